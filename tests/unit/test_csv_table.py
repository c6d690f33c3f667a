"""Behaviour of the CSV table codec used by the site and device importers."""

from __future__ import annotations

import dataclasses
import time

import pytest

from relay.proto.csv.table import (
    SEPARATORS,
    CsvError,
    CsvRow,
    CsvTable,
    RowProblem,
    read_table,
    write_table,
)

# PDMS-E guide, CSV Format: the device import example, header ending in a comma.
GUIDE_DEVICE_CSV = (
    "mac_address, endpoint_name, endpoint_group, reg.1.address, reg.1.displayname, "
    "reg.1.auth.userId, reg.1.auth.password, reg.2.address, reg.2.displayname, "
    "reg.2.auth.userId, reg.2.auth.password,\n"
    "0004F23EA4E1, SoundPoint-EA4E1, EPGroup1|EPGroup2, 1000, Jon Smith, 1000, 1000, 1001, "
    "Jon Smith1, 1001, 1001\n"
)

# PDMS-E guide, CSV Format: the site import example; its JSON is not RFC 4180 quoted.
GUIDE_SITE_CSV = (
    "site_name,description,location_name,subnets\n"
    'Test_site,Site for testing,Test location,"{"public-subnet-list":[{"ip-address":"1.2.3.4",'
    '"mask-length":"32"},"private-subnet-list":[{"ip-address":"172.21.120.1","mask-length":"28"}'
    ',{"ip-address":"192.168.1.1","mask-length":"28"}],{"ip-address":"2.3.4.5",'
    '"mask-length":"32"}]"\n'
)


def read(
    data: bytes | str,
    *,
    max_rows: int = 1000,
    max_bytes: int = 1_000_000,
    separator: str | None = None,
) -> CsvTable:
    return read_table(data, max_rows=max_rows, max_bytes=max_bytes, separator=separator)


def only_problem(table: CsvTable) -> RowProblem:
    assert len(table.problems) == 1, table.problems
    return table.problems[0]


# --- the vendor guide's examples ---------------------------------------------------------


def test_guide_device_example_keeps_header_case_and_drops_trailing_empty_column() -> None:
    table = read(GUIDE_DEVICE_CSV)
    assert table.separator == ","
    assert table.headers == (
        "mac_address",
        "endpoint_name",
        "endpoint_group",
        "reg.1.address",
        "reg.1.displayname",
        "reg.1.auth.userId",
        "reg.1.auth.password",
        "reg.2.address",
        "reg.2.displayname",
        "reg.2.auth.userId",
        "reg.2.auth.password",
    )
    assert table.problems == ()


def test_guide_device_example_row_values_are_trimmed() -> None:
    (row,) = read(GUIDE_DEVICE_CSV).rows
    assert row == CsvRow(
        row=2,
        line=2,
        values=(
            "0004F23EA4E1",
            "SoundPoint-EA4E1",
            "EPGroup1|EPGroup2",
            "1000",
            "Jon Smith",
            "1000",
            "1000",
            "1001",
            "Jon Smith1",
            "1001",
            "1001",
        ),
    )


def test_guide_site_example_json_gives_a_row_problem_not_a_crash() -> None:
    table = read(GUIDE_SITE_CSV)
    assert table.headers == ("site_name", "description", "location_name", "subnets")
    assert table.rows == ()
    problem = only_problem(table)
    assert (problem.row, problem.line) == (2, 2)
    assert problem.message.startswith("row 2, column 4 (subnets): text after the closing quote")
    assert 'double every quote inside it ("")' in problem.message


def test_guide_site_example_with_doubled_quotes_reads_the_json() -> None:
    subnets = '{"public-subnet-list":[{"ip-address":"1.2.3.4","mask-length":"32"}]}'
    data = (
        "site_name,description,location_name,subnets\n"
        f'Test_site,Site for testing,Test location,"{subnets.replace(chr(34), 2 * chr(34))}"\n'
    )
    (row,) = read(data).rows
    assert row.values == ("Test_site", "Site for testing", "Test location", subnets)


def test_row_after_a_quote_error_still_parses() -> None:
    table = read(GUIDE_SITE_CSV + "Other_site,Second,Elsewhere,\n")
    assert only_problem(table).row == 2
    assert table.rows == (CsvRow(3, 3, ("Other_site", "Second", "Elsewhere", "")),)


# --- input bytes -------------------------------------------------------------------------


def test_utf8_bytes_are_decoded() -> None:
    table = read("name,city\nZoë,Zürich\n".encode())
    assert table.rows[0].values == ("Zoë", "Zürich")


def test_utf8_bom_is_removed_from_bytes() -> None:
    assert read(b"\xef\xbb\xbfname,city\na,b\n").headers == ("name", "city")


def test_bom_is_removed_from_str_input() -> None:
    assert read("\ufeffname,city\na,b\n").headers == ("name", "city")


def test_invalid_utf8_names_offset_and_line() -> None:
    with pytest.raises(CsvError) as caught:
        read(b"name,city\na,b\nc,\xff\n")
    assert "byte 0xff at offset 16 (line 3)" in caught.value.message
    assert "UTF-8" in caught.value.message


def test_invalid_utf8_offset_counts_the_bom() -> None:
    with pytest.raises(CsvError, match="offset 5 "):
        read(b"\xef\xbb\xbfab\xfe\n")


def test_utf16_file_is_rejected_with_advice() -> None:
    with pytest.raises(CsvError, match="UTF-16"):
        read("name,city\n".encode("utf-16"))


def test_nul_character_is_rejected() -> None:
    with pytest.raises(CsvError, match="line 2 contains a NUL"):
        read("name\na\x00b\n")


@pytest.mark.parametrize("end", ["\r\n", "\n", "\r"], ids=["crlf", "lf", "cr"])
def test_line_ends_are_crlf_lf_or_lone_cr(end: str) -> None:
    table = read(f"a,b{end}1,2{end}3,4{end}")
    assert [(r.line, r.values) for r in table.rows] == [(2, ("1", "2")), (3, ("3", "4"))]


def test_file_without_final_line_end_reads_last_row() -> None:
    assert read("a,b\n1,2").rows == (CsvRow(2, 2, ("1", "2")),)


def test_blank_lines_are_skipped_but_counted_for_line() -> None:
    table = read("a,b\n\n   \n\t\n1,2\n\n3,4\n")
    assert [(r.row, r.line) for r in table.rows] == [(2, 5), (3, 7)]
    assert table.problems == ()


def test_line_of_only_separators_is_blank() -> None:
    table = read("a,b,c\n , ,,\n1,2,3\n")
    assert [(r.row, r.line) for r in table.rows] == [(2, 3)]


def test_blank_lines_before_the_header_are_skipped() -> None:
    table = read("\n\na,b\n1,2\n")
    assert table.headers == ("a", "b")
    assert table.rows == (CsvRow(2, 4, ("1", "2")),)


def test_quoted_empty_record_is_a_row_not_a_blank_line() -> None:
    assert read('a,b\n"",\n').rows == (CsvRow(2, 2, ("", "")),)


# --- size caps ---------------------------------------------------------------------------


def test_file_over_max_bytes_is_rejected_with_the_limit() -> None:
    with pytest.raises(CsvError, match="the limit is 10 bytes"):
        read(b"a,b\n1,2\n3,4\n", max_bytes=10)


def test_file_at_max_bytes_is_accepted() -> None:
    data = b"a,b\n1,2\n"
    assert len(read(data, max_bytes=len(data)).rows) == 1


def test_str_input_size_is_counted_in_utf8_bytes() -> None:
    with pytest.raises(CsvError, match="is 9 bytes"):
        read("a\nééé\n", max_bytes=8)


def test_more_rows_than_max_rows_is_rejected_with_the_limit() -> None:
    with pytest.raises(CsvError) as caught:
        read("a\n1\n2\n3\n", max_rows=2)
    assert "has more than 2 data rows; the limit is 2" in caught.value.message
    assert caught.value.row == 4


def test_max_rows_does_not_count_blank_lines() -> None:
    assert len(read("a\n1\n\n\n2\n", max_rows=2).rows) == 2


def test_max_rows_counts_problem_rows() -> None:
    with pytest.raises(CsvError, match="limit is 1"):
        read('a\n"x"y\n2\n', max_rows=1)


def test_max_rows_stops_reading_early() -> None:
    data = "a\n" + "1\n" * 50_000
    started = time.perf_counter()
    read(data, max_rows=50_000, max_bytes=len(data))
    full = time.perf_counter() - started
    started = time.perf_counter()
    with pytest.raises(CsvError):
        read(data, max_rows=10, max_bytes=len(data))
    assert time.perf_counter() - started < full / 4


def test_field_of_64_kib_is_accepted() -> None:
    value = "x" * 65536
    assert read(f"a,b\n{value},1\n").rows[0].values == (value, "1")


def test_field_over_64_kib_is_a_row_problem() -> None:
    table = read(f"a,b\n1,{'x' * 65537}\n2,3\n")
    assert only_problem(table).message == (
        "row 2, column 2 (b): the value is 65537 characters; the limit is 65536 (64 KiB)"
    )
    assert table.rows == (CsvRow(3, 3, ("2", "3")),)


def test_quoted_field_over_64_kib_is_a_row_problem() -> None:
    table = read(f'a\n"{"y" * 70000}"\n')
    assert "the limit is 65536" in only_problem(table).message


def test_header_with_1000_columns_is_accepted() -> None:
    header = ",".join(f"c{k}" for k in range(1000))
    assert len(read(header + "\n").headers) == 1000


def test_header_over_1000_columns_is_rejected() -> None:
    header = ",".join(f"c{k}" for k in range(1001))
    with pytest.raises(CsvError, match="1001 columns; the limit is 1000"):
        read(header + "\n")


def test_header_name_over_64_kib_is_rejected() -> None:
    with pytest.raises(CsvError, match="the limit is 65536"):
        read("a," + "h" * 65537 + "\n")


# --- separators --------------------------------------------------------------------------


def test_separators_are_comma_semicolon_and_tab() -> None:
    assert SEPARATORS == (",", ";", "\t")


def test_comma_file_is_detected_from_header() -> None:
    assert read("a,b\n1,2\n").separator == ","


def test_semicolon_file_is_detected_from_header() -> None:
    table = read("name;description\nSite A;first, and best\n")
    assert table.separator == ";"
    assert table.rows[0].values == ("Site A", "first, and best")


def test_tab_file_is_detected_from_header() -> None:
    table = read("name\tdescription\nSite A\tfirst; best\n")
    assert table.separator == "\t"
    assert table.rows[0].values == ("Site A", "first; best")


def test_single_column_header_defaults_to_comma() -> None:
    table = read("mac_address\n0004F23EA4E1\n")
    assert table.separator == ","
    assert table.headers == ("mac_address",)


def test_separator_inside_quoted_header_name_is_not_counted() -> None:
    table = read('"a;b",c\n1,2\n')
    assert table.separator == ","
    assert table.headers == ("a;b", "c")


def test_mixed_separators_in_header_are_rejected() -> None:
    with pytest.raises(CsvError) as caught:
        read("a,b;c\n")
    assert caught.value.message == (
        "mixed separators in the header: found ',' and ';' — use exactly one kind per file"
    )
    assert caught.value.row == 1


def test_mixed_separators_message_names_tab() -> None:
    with pytest.raises(CsvError, match="found ',', ';' and TAB"):
        read("a,b;c\td\n")


def test_explicit_separator_skips_detection() -> None:
    table = read("a,b;c\n1,2;3\n", separator=";")
    assert table.separator == ";"
    assert table.headers == ("a,b", "c")
    assert table.rows[0].values == ("1,2", "3")


def test_explicit_separator_outside_the_three_is_rejected() -> None:
    with pytest.raises(CsvError, match="not supported"):
        read("a|b\n", separator="|")


def test_row_using_another_separator_with_trailing_comma_says_so() -> None:
    table = read("a,b,c\n4;5;6,\n")
    assert only_problem(table).message == (
        "row 2 uses ';' but this file's separator is ',' (one kind of separator per file)"
    )


def test_too_many_fields_not_fixed_by_another_separator_gets_quoting_advice() -> None:
    table = read("a,b\n1;2,3;4,5\n")
    assert only_problem(table).message == (
        "row 2 has 3 fields but the header has 2: quote fields that contain ',' and double the "
        'quotes inside them ("")'
    )


def test_row_with_only_another_separator_is_a_row_problem() -> None:
    table = read("a,b,c\n1,2,3\n4;5;6\n")
    assert only_problem(table) == RowProblem(
        3, 3, "row 3 uses ';' but this file's separator is ',' (one kind of separator per file)"
    )


def test_too_many_fields_that_match_another_separator_names_it() -> None:
    table = read("a,b\n1,5;2,5\n")
    assert only_problem(table).message == (
        "row 2 uses ';' but this file's separator is ',' (one kind of separator per file)"
    )


def test_row_using_tab_in_semicolon_file_names_tab() -> None:
    table = read("a;b\n1\t2\n")
    assert only_problem(table).message == (
        "row 2 uses TAB but this file's separator is ';' (one kind of separator per file)"
    )


def test_tab_padding_in_a_comma_header_counts_as_mixed_separators() -> None:
    with pytest.raises(CsvError, match="found ',' and TAB"):
        read("a,\tb\n")


def test_single_value_row_without_other_separator_is_padded() -> None:
    assert read("a,b,c\n1\n").rows[0].values == ("1", "", "")


# --- header ------------------------------------------------------------------------------


def test_empty_file_is_rejected() -> None:
    with pytest.raises(CsvError, match="empty"):
        read(b"")


def test_file_of_blank_lines_is_rejected() -> None:
    with pytest.raises(CsvError, match="header"):
        read("\n  \n,,\n")


def test_header_names_are_trimmed_and_keep_their_case() -> None:
    assert read(" Site_Name ,  reg.1.displayName \n").headers == ("Site_Name", "reg.1.displayName")


def test_quoted_header_names_are_trimmed() -> None:
    assert read('" a ",b\n').headers == ("a", "b")


def test_header_only_file_has_no_rows() -> None:
    table = read("a,b\n")
    assert (table.rows, table.problems) == ((), ())


def test_duplicate_header_names_differing_in_case_are_rejected() -> None:
    with pytest.raises(CsvError) as caught:
        read("mac_address,name,MAC_Address\n")
    assert "columns 1 ('mac_address') and 3 ('MAC_Address')" in caught.value.message
    assert caught.value.row == 1


def test_empty_header_name_in_the_middle_is_rejected() -> None:
    with pytest.raises(CsvError, match="column 2 of the header has no name"):
        read("a,,c\n")


def test_several_trailing_empty_header_names_are_dropped() -> None:
    assert read("a,b,,,\n1,2\n").headers == ("a", "b")


def test_quoted_empty_header_only_is_rejected() -> None:
    with pytest.raises(CsvError, match="no column names"):
        read('""\n1\n')


def test_unterminated_quote_in_header_is_rejected() -> None:
    with pytest.raises(CsvError, match="never closed"):
        read('a,"b\n1,2\n')


def test_text_after_closing_quote_in_header_is_rejected() -> None:
    with pytest.raises(CsvError, match=r"header \(row 1\), column 2: text after the closing"):
        read('a,"b"c\n')


def test_empty_value_under_trailing_empty_header_is_fine() -> None:
    table = read("a,b,\n1,2,\n")
    assert table.rows == (CsvRow(2, 2, ("1", "2")),)


def test_value_under_trailing_empty_header_is_a_row_problem() -> None:
    table = read("a,b,\n1,2,3\n")
    assert only_problem(table).message == (
        "row 2: value in column 3 has no header; name that column in the header or remove the value"
    )


# --- data rows ---------------------------------------------------------------------------


def test_missing_trailing_fields_are_empty() -> None:
    assert read("a,b,c,d\n1,2\n").rows[0].values == ("1", "2", "", "")


def test_extra_trailing_empty_fields_are_dropped() -> None:
    assert read("a,b\n1,2,,, ,\n").rows == (CsvRow(2, 2, ("1", "2")),)


def test_too_many_fields_is_a_row_problem_with_quoting_advice() -> None:
    table = read("a,b,c,d\n" + ",".join(str(k) for k in range(12)) + "\n")
    assert only_problem(table) == RowProblem(
        2,
        2,
        "row 2 has 12 fields but the header has 4: quote fields that contain ',' and double the "
        'quotes inside them ("")',
    )


def test_problem_row_is_not_in_rows() -> None:
    table = read("a\n1\n2,3\n4\n")
    assert [r.values for r in table.rows] == [("1",), ("4",)]
    assert only_problem(table).row == 3


def test_row_numbers_count_records_not_lines() -> None:
    table = read('a,b\n"multi\nline",1\nx,2\n')
    assert [(r.row, r.line) for r in table.rows] == [(2, 2), (3, 4)]


def test_unquoted_values_are_trimmed_of_spaces_and_tabs() -> None:
    assert read("a;b\n \t x y \t ; z\n").rows[0].values == ("x y", "z")


# --- quotes (RFC 4180) -------------------------------------------------------------------


def test_quoted_field_may_contain_the_separator() -> None:
    assert read('a,b\n"Smith, Jon",1\n').rows[0].values == ("Smith, Jon", "1")


def test_doubled_quote_inside_quoted_field_is_one_quote() -> None:
    assert read('a\n"say ""hi"""\n').rows[0].values == ('say "hi"',)


def test_quoted_empty_string_is_empty() -> None:
    assert read('a,b\n"",x\n').rows[0].values == ("", "x")


def test_spaces_inside_quotes_are_kept() -> None:
    assert read('a,b\n"  padded  ",x\n').rows[0].values == ("  padded  ", "x")


def test_spaces_around_a_quoted_field_are_ignored() -> None:
    assert read('a,b\n  "x"  ,  "y"\t\n').rows[0].values == ("x", "y")


def test_quoted_field_may_contain_line_breaks_as_written() -> None:
    table = read('a,b\r\n"one\r\ntwo\nthree",x\r\nnext,y\r\n')
    assert table.rows == (
        CsvRow(2, 2, ("one\r\ntwo\nthree", "x")),
        CsvRow(3, 5, ("next", "y")),
    )


def test_quote_in_the_middle_of_an_unquoted_field_is_literal() -> None:
    assert read('a,b\n12" screen,x\n').rows[0].values == ('12" screen', "x")


def test_text_after_closing_quote_is_a_row_problem() -> None:
    table = read('a,b\n"x"y,1\n')
    assert only_problem(table).message.startswith(
        "row 2, column 1 (a): text after the closing quote: 'y,1'"
    )


def test_text_after_closing_quote_resyncs_at_next_line() -> None:
    table = read('a,b\n"x" y,"open\nnext,1\n')
    assert only_problem(table).row == 2
    assert table.rows == (CsvRow(3, 3, ("next", "1")),)


def test_text_after_closing_quote_on_a_continuation_line_resyncs_after_it() -> None:
    table = read('a,b\n"one\ntwo"!,1\nnext,2\n')
    problem = only_problem(table)
    assert (problem.row, problem.line) == (2, 2)
    assert table.rows == (CsvRow(3, 4, ("next", "2")),)


def test_unterminated_quote_swallows_rest_of_file_and_says_so() -> None:
    table = read('a,b\n1,2\n3,"open\n4,5\n6,7\n')
    assert table.rows == (CsvRow(2, 2, ("1", "2")),)
    problem = only_problem(table)
    assert (problem.row, problem.line) == (3, 3)
    assert problem.message.startswith(
        "row 3, column 2 (b): the quote that opens this field on line 3 is never closed, "
        "so the rest of the file was read into this one field"
    )


def test_unterminated_quote_names_the_line_where_it_opened() -> None:
    table = read('a,b\n"x\ny",z,"\n\n')
    assert "opens this field on line 3" in only_problem(table).message


# --- write_table -------------------------------------------------------------------------


def test_write_table_puts_header_first_with_lf_line_ends() -> None:
    assert write_table(["a", "b"], [["1", "2"], ["3", "4"]]) == "a,b\n1,2\n3,4\n"


def test_write_table_uses_the_given_separator() -> None:
    assert write_table(["a", "b"], [["1", "2"]], separator="\t") == "a\tb\n1\t2\n"


@pytest.mark.parametrize(
    ("value", "written"),
    [
        ("Smith, Jon", '"Smith, Jon"'),
        ('say "hi"', '"say ""hi"""'),
        ("two\nlines", '"two\nlines"'),
        ("cr\rend", '"cr\rend"'),
        (" padded", '" padded"'),
        ("padded\t", '"padded\t"'),
        ("a;b", '"a;b"'),
        ("plain text", "plain text"),
    ],
)
def test_write_table_quotes_only_fields_that_need_it(value: str, written: str) -> None:
    assert write_table(["a"], [[value]]) == f"a\n{written}\n"


def test_write_table_keeps_an_all_empty_row_readable() -> None:
    text = write_table(["a", "b"], [["", ""]])
    assert read(text).rows == (CsvRow(2, 2, ("", "")),)


def test_write_table_round_trips_awkward_values() -> None:
    headers = ["mac_address", "reg.1.displayName", "notes"]
    rows = [
        ["0004F23EA4E1", ' Jon "J" Smith ', "line one\r\nline two\rthree\n"],
        ["", "", '""'],
        ["a,b;c\td", "\ufeffbom", ""],
    ]
    for separator in SEPARATORS:
        table = read(write_table(headers, rows, separator))
        assert table.headers == tuple(headers)
        assert [list(r.values) for r in table.rows] == rows


def test_write_table_rejects_nul() -> None:
    with pytest.raises(CsvError, match="NUL"):
        write_table(["a"], [["x\x00"]])


def test_write_table_rejects_row_of_wrong_length() -> None:
    with pytest.raises(CsvError, match="row 3 has 1 values but there are 2 headers") as caught:
        write_table(["a", "b"], [["1", "2"], ["3"]])
    assert caught.value.row == 3


def test_write_table_rejects_unknown_separator() -> None:
    with pytest.raises(CsvError, match="not supported"):
        write_table(["a"], [], separator="|")


@pytest.mark.parametrize("headers", [[], [""], [" a"], ["a", "A"]], ids=repr)
def test_write_table_rejects_headers_that_would_not_read_back(headers: list[str]) -> None:
    with pytest.raises(CsvError):
        write_table(headers, [])


def test_write_table_rejects_field_over_64_kib() -> None:
    with pytest.raises(CsvError, match="the limit is 65536"):
        write_table(["a"], [["x" * 65537]])


# --- API shape and speed -----------------------------------------------------------------


def test_csv_error_is_a_value_error_with_message_and_row() -> None:
    error = CsvError("bad", row=3)
    assert isinstance(error, ValueError)
    assert (error.message, error.row, str(error)) == ("bad", 3, "bad")
    assert CsvError("whole file").row is None


def test_results_are_frozen() -> None:
    table = read("a\n1\n")
    with pytest.raises(dataclasses.FrozenInstanceError):
        table.rows[0].row = 5  # type: ignore[misc]


def test_ten_thousand_rows_of_twelve_fields_parse_quickly() -> None:
    headers = [f"h{k}" for k in range(12)]
    text = write_table(headers, ([f"v{r}.{k}" for k in range(12)] for r in range(10_000)))
    started = time.perf_counter()
    table = read(text, max_rows=10_000, max_bytes=len(text))
    assert time.perf_counter() - started < 0.5
    assert len(table.rows) == 10_000
