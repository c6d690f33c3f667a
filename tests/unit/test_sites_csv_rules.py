"""Site CSV rules without sockets (cloud.md "Sites"; PDMS-E guide, "Importing Sites Using
CSV Files"): the subnets JSON and the rows."""

from __future__ import annotations

import json
from ipaddress import IPv4Network
from pathlib import Path

import pytest

from relay.cloud.rules.devices_csv import RowError
from relay.cloud.rules.errors import RuleError
from relay.cloud.rules.sites import PublicSubnet
from relay.cloud.rules.sites_csv import (
    HEADERS,
    MAX_SITE_CSV_BYTES,
    MAX_SITE_ROWS,
    SiteRecord,
    parse_site_rows,
    parse_subnets_json,
)
from relay.proto.csv.table import CsvError, CsvTable, read_table

GUIDE = Path(__file__).resolve().parents[1] / "fixtures" / "guide"
HEADER = "site_name,description,location_name,subnets\n"
SIMPLE = '"{""public-subnet-list"": [{""ip-address"": ""20.1.0.0"", ""mask-length"": ""16""}]}"'


def table(text: str | bytes) -> CsvTable:
    return read_table(text, max_rows=MAX_SITE_ROWS, max_bytes=MAX_SITE_CSV_BYTES)


def parse(text: str | bytes) -> tuple[list[SiteRecord], list[RowError]]:
    return parse_site_rows(table(text))


def one_error(text: str | bytes) -> RowError:
    records, errors = parse(text)
    assert records == []
    assert len(errors) == 1
    return errors[0]


def json_error(value: object) -> RuleError:
    text = value if isinstance(value, str) else json.dumps(value)
    with pytest.raises(RuleError) as caught:
        parse_subnets_json(text)
    return caught.value


def net(text: str) -> IPv4Network:
    return IPv4Network(text)


def entry(address: object, mask: object, private: object = None) -> dict[str, object]:
    out: dict[str, object] = {"ip-address": address, "mask-length": mask}
    if private is not None:
        out["private-subnet-list"] = private
    return out


# --- limits and headers -----------------------------------------------------------------


def test_row_limit_is_fewer_than_two_thousand() -> None:
    assert MAX_SITE_ROWS == 1_999


def test_two_thousand_rows_do_not_read() -> None:
    with pytest.raises(CsvError) as caught:
        table(HEADER + "".join(f"S{i},,,{SIMPLE}\n" for i in range(2000)))
    assert caught.value.code == "too_many_rows"


def test_headers_are_the_guides() -> None:
    assert HEADERS == ("site_name", "description", "location_name", "subnets")


@pytest.mark.parametrize("missing", ["site_name", "subnets"])
def test_required_header_missing_refuses_the_file(missing: str) -> None:
    headers = ",".join(h for h in HEADERS if h != missing)
    with pytest.raises(RuleError) as caught:
        parse(headers + "\nx,y,z\n")
    assert (caught.value.code, caught.value.field) == ("missing_header", missing)


def test_unknown_header_refuses_the_file_naming_it() -> None:
    with pytest.raises(RuleError) as caught:
        parse("site_name,subnets,Region\nA,{},x\n")
    assert (caught.value.code, caught.value.field) == ("unknown_header", "Region")


def test_headers_are_case_and_order_insensitive() -> None:
    records, errors = parse(f"Subnets,SITE_NAME,Location_Name\n{SIMPLE},Branch,Here\n")
    assert errors == []
    assert [(r.name, r.description, r.location) for r in records] == [("Branch", "", "Here")]


# --- the subnets JSON ------------------------------------------------------------------


def test_subnets_json_gives_public_subnets_with_their_private_ones() -> None:
    value = {
        "public-subnet-list": [
            entry("1.2.3.4", "32", [entry("172.21.120.1", "28"), entry("192.168.1.1", "28")]),
            entry("2.3.4.5", 32),
        ]
    }
    assert parse_subnets_json(json.dumps(value)) == (
        PublicSubnet(net("1.2.3.4/32"), (net("172.21.120.0/28"), net("192.168.1.0/28"))),
        PublicSubnet(net("2.3.4.5/32"), ()),
    )


def test_empty_public_list_is_a_site_without_subnets() -> None:
    assert parse_subnets_json('{"public-subnet-list": []}') == ()


def test_spaces_around_address_and_mask_are_ignored() -> None:
    value = {"public-subnet-list": [entry(" 20.1.0.0 ", " 16 ")]}
    assert parse_subnets_json(json.dumps(value)) == (PublicSubnet(net("20.1.0.0/16")),)


def test_guide_example_json_error_gives_the_character_and_the_text_near_it() -> None:
    records = table((GUIDE / "site_as_printed_requoted.csv").read_bytes())
    value = records.rows[0].values[3]
    error = json_error(value)
    assert (error.code, error.field) == ("invalid_json", "subnets")
    with pytest.raises(json.JSONDecodeError) as decoded:
        json.loads(value)
    assert f"at character {decoded.value.pos + 1}" in error.message
    assert "near" in error.message


def test_guide_format_template_is_refused() -> None:
    template = (
        '{"public-subnet-list":[{"ip-address":"","mask-length":"","private-subnet-list":'
        '[{"ip-address":"","mask-length":""}]>>'
    )
    assert json_error(template).code == "invalid_json"


def test_deeply_nested_json_is_refused_not_crashing() -> None:
    error = json_error("[" * 100_000)
    assert (error.code, error.field) == ("invalid_json", "subnets")


@pytest.mark.parametrize(
    "value",
    [[], '"text"', 3, None, {"public-subnets": []}, {"public-subnet-list": {}}],
    ids=["list", "string", "number", "null", "wrong-key", "object"],
)
def test_subnets_must_be_an_object_with_a_public_list(value: object) -> None:
    error = json_error(value)
    assert (error.code, error.field) == ("invalid_subnets", "subnets")


@pytest.mark.parametrize(
    ("item", "where"),
    [
        ("20.1.0.0/16", "public-subnet-list[0]"),
        ({"ip-address": "20.1.0.0"}, "public-subnet-list[0]"),
        ({"mask-length": "16"}, "public-subnet-list[0]"),
        (entry(20, "16"), "public-subnet-list[0]"),
        (entry("20.1.0.0", True), "public-subnet-list[0]"),
        (entry("20.1.0.0", 16.0), "public-subnet-list[0]"),
        (entry("20.1.0.0", "16", "10.0.0.0/8"), "public-subnet-list[0].private-subnet-list"),
        (
            entry("20.1.0.0", "16", [entry("10.0.0.0", None)]),
            "public-subnet-list[0].private-subnet-list[0]",
        ),
    ],
)
def test_bad_entries_are_refused_saying_where(item: object, where: str) -> None:
    error = json_error({"public-subnet-list": [item]})
    assert error.code == "invalid_subnets"
    assert where in error.message


@pytest.mark.parametrize(
    ("address", "mask"),
    [
        ("300.1.1.0", "16"),
        ("20.1.0.0", "33"),
        ("20.1.0.0", "-1"),
        ("2001:db8::", "32"),
        ("", "8"),
        ("20.1", "16"),
    ],
)
def test_invalid_cidr_is_refused_naming_the_entry(address: str, mask: str) -> None:
    error = json_error({"public-subnet-list": [entry("30.0.0.0", "8"), entry(address, mask)]})
    assert (error.code, error.field) == ("invalid_cidr", "public-subnet-list[1]")


def test_invalid_private_cidr_names_the_private_entry() -> None:
    value = {
        "public-subnet-list": [
            entry("20.1.0.0", "16", [entry("10.0.0.0", "8"), entry("10.0.0.0", "40")])
        ]
    }
    assert json_error(value).field == "public-subnet-list[0].private-subnet-list[1]"


def test_public_subnet_listed_twice_is_refused() -> None:
    value = {"public-subnet-list": [entry("20.1.0.0", "16"), entry("20.1.255.0", "16")]}
    assert json_error(value).code == "duplicate_subnet"


def test_private_subnet_listed_twice_is_refused() -> None:
    value = {"public-subnet-list": [entry("20.1.0.0", "16", [entry("10.0.0.0", "8")] * 2)]}
    assert json_error(value).code == "duplicate_subnet"


def test_overlapping_subnets_are_allowed() -> None:
    value = {"public-subnet-list": [entry("20.0.0.0", "8"), entry("20.1.0.0", "16")]}
    assert len(parse_subnets_json(json.dumps(value))) == 2


# --- rows ----------------------------------------------------------------------------------


def test_guide_example_as_printed_is_one_row_error_at_the_subnets_column() -> None:
    error = one_error((GUIDE / "site_as_printed.csv").read_bytes())
    assert error.row == 2
    assert error.error.startswith("row 2, column 4 (subnets):")


def test_guide_example_properly_quoted_is_one_site() -> None:
    records, errors = parse((GUIDE / "site_quoted.csv").read_bytes())
    assert errors == []
    assert records == [
        SiteRecord(
            2,
            "Test_site",
            "Site for testing",
            "Test location",
            (
                PublicSubnet(net("1.2.3.4/32"), (net("172.21.120.0/28"), net("192.168.1.0/28"))),
                PublicSubnet(net("2.3.4.5/32"), ()),
            ),
        )
    ]


def test_subnets_errors_are_prefixed_with_the_column() -> None:
    error = one_error(HEADER + "Branch,,,nope\n")
    assert (error.row, error.key) == (2, "Branch")
    assert error.error.startswith("column subnets: subnets is not valid JSON")


def test_empty_subnets_cell_is_a_row_error() -> None:
    assert one_error(HEADER + "Branch,d,l,\n").error.startswith("column subnets:")


@pytest.mark.parametrize("name", ["", "Test site", "caf\u00e9", "x" * 129])
def test_site_name_rule_is_checked_per_row(name: str) -> None:
    error = one_error(HEADER + f'"{name}",,,{SIMPLE}\n')
    assert error.error.startswith("column site_name:")


def test_internet_site_row_is_an_error() -> None:
    error = one_error(HEADER + f"Internet,,,{SIMPLE}\n")
    assert error.error.startswith("column site_name:") and "Internet" in error.error


def test_intranet_site_row_is_accepted() -> None:
    records, errors = parse(HEADER + f"Intranet,,,{SIMPLE}\n")
    assert errors == [] and [r.name for r in records] == ["Intranet"]


@pytest.mark.parametrize("column", ["description", "location"])
def test_text_over_512_characters_is_a_row_error(column: str) -> None:
    description, location = ("d" * 513, "") if column == "description" else ("", "l" * 513)
    error = one_error(HEADER + f"Branch,{description},{location},{SIMPLE}\n")
    assert "512" in error.error


def test_second_row_for_a_site_is_an_error_naming_the_first() -> None:
    records, errors = parse(HEADER + f"A,first,,{SIMPLE}\nA,second,,{SIMPLE}\n")
    assert [r.description for r in records] == ["first"]
    assert [(e.row, e.key) for e in errors] == [(3, "A")]
    assert "row 2" in errors[0].error


def test_site_names_are_case_sensitive_for_duplicates() -> None:
    records, errors = parse(HEADER + f"Branch,,,{SIMPLE}\nbranch,,,{SIMPLE}\n")
    assert errors == [] and [r.name for r in records] == ["Branch", "branch"]


def test_unreadable_and_invalid_rows_are_reported_in_row_order() -> None:
    text = (
        HEADER + f'A,,,{SIMPLE}\nB,,,"{{"x\nbad name,,,{SIMPLE}\nC,,,{SIMPLE},extra\nD,,,{SIMPLE}\n'
    )
    records, errors = parse(text)
    assert [r.name for r in records] == ["A", "D"]
    assert [(e.row, e.key) for e in errors] == [(3, ""), (4, "bad name"), (5, "")]
