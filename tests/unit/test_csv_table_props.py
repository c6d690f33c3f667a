"""Property tests for the CSV table codec: round trip, fuzzing, fast/slow path agreement."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from relay.proto.csv.table import SEPARATORS, CsvError, CsvTable, read_table, write_table


def read(text: str) -> CsvTable:
    return read_table(text, max_rows=500, max_bytes=100_000)


no_nul = st.text(st.characters(exclude_characters="\x00"))
header_name = no_nul.filter(lambda s: s.strip(" \t") == s != "")


@st.composite
def tables(draw: st.DrawFn) -> tuple[list[str], list[list[str]]]:
    headers = draw(st.lists(header_name, min_size=1, max_size=6, unique_by=lambda s: s.casefold()))
    rows = draw(st.lists(st.lists(no_nul, min_size=len(headers), max_size=len(headers))))
    return headers, rows


@settings(max_examples=300, deadline=None)
@given(table=tables(), separator=st.sampled_from(SEPARATORS))
def test_write_then_read_round_trips_any_text(
    table: tuple[list[str], list[list[str]]], separator: str
) -> None:
    headers, rows = table
    parsed = read(write_table(headers, rows, separator))
    assert parsed.headers == tuple(headers)
    assert [list(r.values) for r in parsed.rows] == rows
    assert parsed.problems == ()
    if len(headers) > 1:
        assert parsed.separator == separator


csv_like_text = st.text(st.sampled_from(list(',;\t "\r\nab\ufeff')), max_size=400) | st.text(
    max_size=400
)


@settings(max_examples=300, deadline=None)
@given(
    data=st.binary(max_size=4000) | csv_like_text,
    separator=st.none() | st.sampled_from(SEPARATORS),
)
def test_any_input_only_raises_csv_error(data: bytes | str, separator: str | None) -> None:
    try:
        table = read_table(data, max_rows=50, max_bytes=3000, separator=separator)
    except CsvError:
        return
    for row in table.rows:
        assert len(row.values) == len(table.headers)


unquoted_field = st.text(
    st.characters(exclude_characters='\x00"\r\n,;\t\ufeff'), max_size=8
).filter(lambda s: s.strip(" \t") != "")
plain_rows = st.lists(st.lists(unquoted_field, min_size=3, max_size=3), min_size=1, max_size=20)


@settings(max_examples=200, deadline=None)
@given(rows=plain_rows, separator=st.sampled_from(SEPARATORS))
def test_lines_without_quotes_read_like_a_naive_split(
    rows: list[list[str]], separator: str
) -> None:
    text = "\n".join(separator.join(row) for row in [["a", "b", "c"], *rows])
    parsed = read(text)
    assert [list(r.values) for r in parsed.rows] == [[f.strip(" \t") for f in row] for row in rows]


@settings(max_examples=200, deadline=None)
@given(rows=plain_rows, separator=st.sampled_from(SEPARATORS))
def test_quote_free_fields_read_the_same_on_the_quoted_path(
    rows: list[list[str]], separator: str
) -> None:
    fast = "\n".join(separator.join(row) for row in [["a", "b", "c"], *rows])
    # A quoted last column sends every record through the state machine.
    slow = "\n".join(separator.join([*row, '"q"']) for row in [["a", "b", "c"], *rows])
    fast_rows = [r.values for r in read(fast).rows]
    slow_rows = [r.values[:3] for r in read(slow).rows]
    assert slow_rows == fast_rows
