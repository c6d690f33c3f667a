"""Site CSV import over the REST API (issue 2; cloud.md "Sites"; PDMS-E guide,
"Importing Sites Using CSV Files").

`POST /api/v1/sites/import` takes the CSV as the body and answers a per-row report.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.api.conftest import CSV, Api, Reply, error_of, only_row, post_large

GUIDE = Path(__file__).resolve().parents[1] / "fixtures" / "guide"
HEADER = "site_name,description,location_name,subnets\n"


def pub(address: str, mask: int | str, *private: tuple[str, int | str]) -> dict[str, Any]:
    """One entry of the guide's "public-subnet-list"."""
    entry: dict[str, Any] = {"ip-address": address, "mask-length": str(mask)}
    if private:
        entry["private-subnet-list"] = [
            {"ip-address": a, "mask-length": str(m)} for a, m in private
        ]
    return entry


def cell(value: object) -> str:
    """A CSV field holding JSON (or any text), quoted as the guide says to."""
    text = value if isinstance(value, str) else json.dumps(value)
    return '"' + text.replace('"', '""') + '"'


def subnets(*public: dict[str, Any]) -> str:
    return cell({"public-subnet-list": list(public)})


def row(name: str, subnets_cell: str, description: str = "", location: str = "") -> str:
    return f"{name},{description},{location},{subnets_cell}\n"


async def import_sites(api: Api, data: str | bytes) -> Reply:
    return await api.post("/sites/import", data=data, content_type=CSV)


async def import_ok(api: Api, data: str | bytes) -> dict[str, Any]:
    reply = await import_sites(api, data)
    assert reply.status == 200, reply.text
    body: dict[str, Any] = reply.body
    return body


async def site(api: Api, name: str) -> dict[str, Any]:
    reply = await api.get(f"/sites/{name}")
    assert reply.status == 200, reply.text
    body: dict[str, Any] = reply.body
    return body


async def site_names(api: Api) -> list[str]:
    return [s["name"] for s in (await api.get("/sites")).body]


async def add_device(api: Api, mac: str, public_ip: str, private_ip: str | None = None) -> None:
    body = {"mac": mac, "public_ip": public_ip}
    if private_ip is not None:
        body["private_ip"] = private_ip
    reply = await api.post("/devices", body)
    assert reply.status == 201, reply.text


async def site_of(api: Api, mac: str) -> str:
    reply = await api.get(f"/devices/{mac}")
    assert reply.status == 200, reply.text
    name: str = reply.body["site"]
    return name


# --- the guide's example ---------------------------------------------------------------


async def test_guide_example_as_printed_is_a_row_error_naming_row_and_column(api: Api) -> None:
    report = await import_ok(api, (GUIDE / "site_as_printed.csv").read_bytes())
    found = only_row(report)
    assert (found["row"], found["status"]) == (2, "error")
    assert "row 2" in found["error"] and "column 4 (subnets)" in found["error"]
    assert (report["created"], report["errors"]) == (0, 1)
    assert await site_names(api) == ["Internet", "Intranet"]


async def test_guide_example_with_csv_quoting_fixed_reports_where_the_json_breaks(
    api: Api,
) -> None:
    report = await import_ok(api, (GUIDE / "site_as_printed_requoted.csv").read_bytes())
    found = only_row(report)
    assert (found["row"], found["key"], found["status"]) == (2, "Test_site", "error")
    assert "subnets" in found["error"] and "not valid JSON" in found["error"]
    assert "at character" in found["error"]
    assert await site_names(api) == ["Internet", "Intranet"]


async def test_guide_example_properly_quoted_creates_the_site_with_its_subnets(api: Api) -> None:
    report = await import_ok(api, (GUIDE / "site_quoted.csv").read_bytes())
    assert report["rows"] == [{"row": 2, "key": "Test_site", "status": "created"}]
    created = await site(api, "Test_site")
    assert created["description"] == "Site for testing"
    assert created["location"] == "Test location"
    assert created["public_subnets"] == [
        {"cidr": "1.2.3.4/32", "private_subnets": ["172.21.120.0/28", "192.168.1.0/28"]},
        {"cidr": "2.3.4.5/32", "private_subnets": []},
    ]


# --- format ------------------------------------------------------------------------------


async def test_headers_are_case_and_order_insensitive(api: Api) -> None:
    value = subnets(pub("20.1.0.0", 16))
    text = f"SUBNETS,Location_Name,Site_Name,Description\n{value},Here,Branch,Desc\n"
    report = await import_ok(api, text)
    assert report["created"] == 1
    created = await site(api, "Branch")
    assert (created["description"], created["location"]) == ("Desc", "Here")
    assert created["public_subnets"] == [{"cidr": "20.1.0.0/16", "private_subnets": []}]


async def test_only_site_name_and_subnets_are_required(api: Api) -> None:
    report = await import_ok(api, f"site_name,subnets\nBranch,{subnets(pub('20.1.0.0', 16))}\n")
    assert report["created"] == 1
    assert (await site(api, "Branch"))["description"] == ""


@pytest.mark.parametrize("separator", [";", "\t"], ids=["semicolon", "tab"])
async def test_each_separator_kind_is_detected(api: Api, separator: str) -> None:
    text = separator.join(["site_name", "description", "subnets"]) + "\n"
    text += separator.join(["Branch", "a, b", subnets(pub("20.1.0.0", 16))]) + "\n"
    report = await import_ok(api, text)
    assert report["created"] == 1
    assert (await site(api, "Branch"))["description"] == "a, b"


async def test_separator_can_be_forced_by_query(api: Api) -> None:
    text = f"site_name;description;subnets\nBranch;a,b;{subnets(pub('20.1.0.0', 16))}\n"
    reply = await api.post("/sites/import", data=text, content_type=CSV, params={"separator": ";"})
    assert reply.status == 200, reply.text
    assert (await site(api, "Branch"))["description"] == "a,b"


async def test_separator_tab_can_be_forced_by_name(api: Api) -> None:
    text = f"site_name\tsubnets\nBranch\t{subnets(pub('20.1.0.0', 16))}\n"
    reply = await api.post(
        "/sites/import", data=text, content_type=CSV, params={"separator": "tab"}
    )
    assert reply.status == 200, reply.text
    assert reply.body["created"] == 1


async def test_mask_length_may_be_a_json_number(api: Api) -> None:
    value = cell({"public-subnet-list": [{"ip-address": "20.1.0.0", "mask-length": 16}]})
    report = await import_ok(api, f"site_name,subnets\nBranch,{value}\n")
    assert report["created"] == 1
    assert (await site(api, "Branch"))["public_subnets"][0]["cidr"] == "20.1.0.0/16"


async def test_whitespace_around_unquoted_values_is_trimmed(api: Api) -> None:
    text = (
        f"site_name , description ,subnets\n  Branch  ,  Desc  , {subnets(pub(' 20.1.0.0 ', 16))}\n"
    )
    report = await import_ok(api, text)
    assert only_row(report)["key"] == "Branch"
    assert (await site(api, "Branch"))["description"] == "Desc"


# --- overwrite and the built-in sites ---------------------------------------------------


async def test_row_overwrites_the_site_of_the_same_name(api: Api) -> None:
    reply = await api.post(
        "/sites",
        {
            "name": "Branch",
            "description": "old",
            "location": "old place",
            "public_subnets": [{"cidr": "30.0.0.0/8", "private_subnets": ["10.0.0.0/8"]}],
        },
    )
    assert reply.status == 201, reply.text
    report = await import_ok(api, HEADER + row("Branch", subnets(pub("20.1.0.0", 16)), "new"))
    assert report["rows"] == [{"row": 2, "key": "Branch", "status": "updated"}]
    assert (report["created"], report["updated"]) == (0, 1)
    updated = await site(api, "Branch")
    assert (updated["description"], updated["location"]) == ("new", "")
    assert updated["public_subnets"] == [{"cidr": "20.1.0.0/16", "private_subnets": []}]


async def test_importing_the_same_file_twice_updates(api: Api) -> None:
    text = HEADER + row("Branch", subnets(pub("20.1.0.0", 16)))
    assert only_row(await import_ok(api, text))["status"] == "created"
    assert only_row(await import_ok(api, text))["status"] == "updated"
    assert (await site_names(api)).count("Branch") == 1


async def test_internet_site_cannot_be_edited(api: Api) -> None:
    before = await site(api, "Internet")
    report = await import_ok(api, HEADER + row("Internet", subnets(pub("20.1.0.0", 16)), "x"))
    found = only_row(report)
    assert found["status"] == "error"
    assert "site_name" in found["error"] and "Internet" in found["error"]
    assert await site(api, "Internet") == before


async def test_intranet_site_subnets_can_be_set_by_import(api: Api) -> None:
    report = await import_ok(api, HEADER + row("Intranet", subnets(pub("20.1.0.0", 16))))
    assert only_row(report)["status"] == "updated"
    intranet = await site(api, "Intranet")
    assert intranet["builtin"] is True
    assert intranet["public_subnets"] == [{"cidr": "20.1.0.0/16", "private_subnets": []}]


# --- re-homing ----------------------------------------------------------------------------


async def test_imported_site_takes_the_devices_its_subnets_match(api: Api) -> None:
    await add_device(api, "0004f2000001", "20.1.2.3", "10.0.0.5")
    await add_device(api, "0004f2000002", "30.1.2.3")
    assert await site_of(api, "0004f2000001") == "Internet"
    await import_ok(api, HEADER + row("Branch", subnets(pub("20.1.0.0", 16))))
    assert await site_of(api, "0004f2000001") == "Branch"
    assert await site_of(api, "0004f2000002") == "Internet"
    assert (await site(api, "Branch"))["device_count"] == 1


async def test_longest_public_prefix_wins_among_imported_sites(api: Api) -> None:
    await add_device(api, "0004f2000001", "20.1.2.3")
    await add_device(api, "0004f2000002", "20.2.0.1")
    text = (
        HEADER
        + row("Wide", subnets(pub("20.0.0.0", 8)))
        + row("Narrow", subnets(pub("20.1.0.0", 16)))
    )
    await import_ok(api, text)
    assert await site_of(api, "0004f2000001") == "Narrow"
    assert await site_of(api, "0004f2000002") == "Wide"


async def test_private_subnets_decide_between_sites_sharing_a_public_subnet(api: Api) -> None:
    await add_device(api, "0004f2000001", "20.1.2.3", "10.1.0.5")
    await add_device(api, "0004f2000002", "20.1.2.3", "10.2.0.5")
    text = (
        HEADER
        + row("Floor-1", subnets(pub("20.1.0.0", 16, ("10.1.0.0", 16))))
        + row("Floor-2", subnets(pub("20.1.0.0", 16, ("10.2.0.0", 16))))
    )
    await import_ok(api, text)
    assert await site_of(api, "0004f2000001") == "Floor-1"
    assert await site_of(api, "0004f2000002") == "Floor-2"


async def test_overwriting_a_site_moves_its_devices_to_what_they_now_match(api: Api) -> None:
    await add_device(api, "0004f2000001", "20.1.2.3")
    await import_ok(api, HEADER + row("Branch", subnets(pub("20.1.0.0", 16))))
    assert await site_of(api, "0004f2000001") == "Branch"
    await import_ok(api, HEADER + row("Branch", subnets(pub("30.0.0.0", 8))))
    assert await site_of(api, "0004f2000001") == "Internet"


async def test_rejected_row_does_not_move_devices(api: Api) -> None:
    await add_device(api, "0004f2000001", "20.1.2.3")
    bad = cell({"public-subnet-list": [pub("20.1.0.0", 16), pub("20.1.0.0", 16)]})
    report = await import_ok(api, HEADER + row("Branch", bad))
    assert only_row(report)["status"] == "error"
    assert await site_of(api, "0004f2000001") == "Internet"


# --- whole-file problems ----------------------------------------------------------------


@pytest.mark.parametrize("missing", ["site_name", "subnets"])
async def test_file_without_a_required_column_is_refused(api: Api, missing: str) -> None:
    headers = [h for h in ("site_name", "description", "subnets") if h != missing]
    values = {"site_name": "Branch", "description": "d", "subnets": subnets(pub("20.1.0.0", 16))}
    text = ",".join(headers) + "\n" + ",".join(values[h] for h in headers) + "\n"
    reply = await import_sites(api, text)
    assert reply.status == 422
    error = error_of(reply)
    assert (error["code"], error["field"]) == ("missing_header", missing)
    assert await site_names(api) == ["Internet", "Intranet"]


async def test_unknown_column_is_refused_naming_it(api: Api) -> None:
    reply = await import_sites(api, f"site_name,subnets,region\nBranch,{subnets()},EU\n")
    assert reply.status == 422
    error = error_of(reply)
    assert error["code"] == "unknown_header" and "region" in error["message"]


async def test_mixed_separators_in_the_header_refuse_the_file(api: Api) -> None:
    reply = await import_sites(api, f"site_name;description,subnets\nBranch;d,{subnets()}\n")
    assert reply.status == 422
    assert "mixed separators" in error_of(reply)["message"]
    assert await site_names(api) == ["Internet", "Intranet"]


async def test_2000_rows_are_refused_with_413_and_nothing_applied(api: Api) -> None:
    text = HEADER + "".join(
        row(f"S{i}", subnets(pub(f"10.{i // 256}.{i % 256}.0", 24))) for i in range(2000)
    )
    reply = await import_sites(api, text)
    assert reply.status == 413
    error = error_of(reply)
    assert error["code"] == "too_many_rows" and "1999" in error["message"]
    assert await site_names(api) == ["Internet", "Intranet"]


async def test_1999_rows_are_read_and_each_reported(api: Api) -> None:
    text = HEADER + "".join(
        row(f"S{i}", subnets(pub(f"10.{i // 256}.{i % 256}.0", 24))) for i in range(1999)
    )
    report = await import_ok(api, text)
    assert len(report["rows"]) == 1999
    assert report["created"] + report["errors"] == 1999
    assert report["created"] >= 1998


async def test_body_over_20_mb_is_a_413_json_error(api: Api) -> None:
    body = HEADER.encode() + b"x" * (20 * 1024 * 1024 + 1)
    reply = await post_large(api, "/sites/import", body)
    assert reply.status == 413
    assert error_of(reply)["code"] == "too_large"


async def test_body_over_the_site_csv_limit_is_a_413_json_error(api: Api) -> None:
    body = HEADER.encode() + b"x" * (9 * 1024 * 1024)
    reply = await post_large(api, "/sites/import", body)
    assert reply.status == 413
    error = error_of(reply)
    assert (error["code"], error["field"]) == ("too_large", "body")


async def test_empty_body_is_refused(api: Api) -> None:
    reply = await import_sites(api, "")
    assert reply.status == 422
    assert error_of(reply)["field"] == "body"


# --- row problems -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("not json", "not valid JSON"),
        ('{"public-subnet-list": [', "not valid JSON"),
        ("[]", "public-subnet-list"),
        ('{"public-subnets": []}', "public-subnet-list"),
        ('{"public-subnet-list": {}}', "public-subnet-list"),
        ('{"public-subnet-list": ["20.1.0.0/16"]}', "public-subnet-list[0]"),
        ('{"public-subnet-list": [{"ip-address": "20.1.0.0"}]}', "public-subnet-list[0]"),
        (
            '{"public-subnet-list": [{"ip-address": "20.1.0.0", "mask-length": true}]}',
            "public-subnet-list[0]",
        ),
        (
            '{"public-subnet-list": [{"ip-address": "20.1.0.0", "mask-length": "16", '
            '"private-subnet-list": "10.0.0.0/8"}]}',
            "public-subnet-list[0].private-subnet-list",
        ),
        (
            '{"public-subnet-list": [{"ip-address": "20.1.0.0", "mask-length": "16", '
            '"private-subnet-list": [{"ip-address": "10.0.0.0"}]}]}',
            "public-subnet-list[0].private-subnet-list[0]",
        ),
        ("[" * 50_000, "subnets"),
    ],
    ids=[
        "text",
        "truncated",
        "list",
        "wrong-key",
        "object-not-list",
        "string-entry",
        "no-mask",
        "bool-mask",
        "private-not-list",
        "private-no-mask",
        "deeply-nested",
    ],
)
async def test_malformed_subnets_is_a_row_error_saying_where(
    api: Api, value: str, expected: str
) -> None:
    report = await import_ok(api, HEADER + row("Branch", cell(value)))
    found = only_row(report)
    assert (found["row"], found["key"], found["status"]) == (2, "Branch", "error")
    assert expected in found["error"]
    assert "Branch" not in await site_names(api)


@pytest.mark.parametrize(
    ("address", "mask", "shown"),
    [
        ("300.1.1.0", "16", "300.1.1.0"),
        ("20.1.0.0", "33", "33"),
        ("20.1.0.0", "-1", "-1"),
        ("20.1.0.0", "x", "x"),
        ("2001:db8::", "32", "IPv6"),
        ("", "16", "not an IPv4 address"),
    ],
)
async def test_invalid_cidr_is_a_row_error_naming_the_value(
    api: Api, address: str, mask: str, shown: str
) -> None:
    report = await import_ok(api, HEADER + row("Branch", subnets(pub(address, mask))))
    found = only_row(report)
    assert found["status"] == "error"
    assert shown in found["error"] and "public-subnet-list[0]" in found["error"]
    assert "Branch" not in await site_names(api)


async def test_invalid_private_cidr_is_a_row_error_naming_it(api: Api) -> None:
    value = subnets(pub("20.1.0.0", 16, ("10.0.0.0", 8), ("10.999.0.0", 16)))
    report = await import_ok(api, HEADER + row("Branch", value))
    found = only_row(report)
    assert "public-subnet-list[0].private-subnet-list[1]" in found["error"]
    assert "10.999.0.0" in found["error"]


async def test_public_subnet_listed_twice_in_a_site_is_a_row_error(api: Api) -> None:
    value = subnets(pub("20.1.0.0", 16), pub("20.1.0.0", 16))
    report = await import_ok(api, HEADER + row("Branch", value))
    assert "listed twice" in only_row(report)["error"]


async def test_empty_subnets_cell_is_a_row_error(api: Api) -> None:
    report = await import_ok(api, HEADER + "Branch,d,l,\n")
    found = only_row(report)
    assert found["status"] == "error" and "subnets" in found["error"]


@pytest.mark.parametrize("name", ["Test site", "a/b", "caf\u00e9", "x" * 129])
async def test_site_name_breaking_the_name_rule_is_a_row_error(api: Api, name: str) -> None:
    report = await import_ok(api, HEADER + row(cell(name), subnets(pub("20.1.0.0", 16))))
    found = only_row(report)
    assert found["status"] == "error" and "site_name" in found["error"]
    assert await site_names(api) == ["Internet", "Intranet"]


async def test_empty_site_name_is_a_row_error(api: Api) -> None:
    report = await import_ok(api, HEADER + row("", subnets(pub("20.1.0.0", 16)), "d"))
    found = only_row(report)
    assert found["status"] == "error" and "site_name" in found["error"]


async def test_description_over_512_characters_is_a_row_error(api: Api) -> None:
    report = await import_ok(api, HEADER + row("Branch", subnets(pub("20.1.0.0", 16)), "d" * 513))
    found = only_row(report)
    assert found["status"] == "error" and "512" in found["error"]


async def test_same_site_twice_in_one_file_keeps_the_first_row(api: Api) -> None:
    text = (
        HEADER
        + row("Branch", subnets(pub("20.1.0.0", 16)), "first")
        + row("Branch", subnets(pub("30.0.0.0", 8)), "second")
    )
    report = await import_ok(api, text)
    assert [(r["row"], r["status"]) for r in report["rows"]] == [(2, "created"), (3, "error")]
    assert "row 2" in report["rows"][1]["error"]
    assert (await site(api, "Branch"))["description"] == "first"


async def test_row_using_another_separator_is_a_row_error_and_the_others_apply(
    api: Api,
) -> None:
    text = f"site_name,subnets\nA,{subnets(pub('20.1.0.0', 16))}\nB;{subnets(pub('30.0.0.0', 8))}\n"
    report = await import_ok(api, text)
    assert [(r["row"], r["status"]) for r in report["rows"]] == [(2, "created"), (3, "error")]
    assert "row 3" in report["rows"][1]["error"]
    assert "B" not in await site_names(api)


async def test_rejected_row_changes_nothing_while_good_rows_apply(api: Api) -> None:
    reply = await api.post(
        "/sites",
        {"name": "Kept", "description": "keep", "public_subnets": [{"cidr": "40.0.0.0/8"}]},
    )
    assert reply.status == 201, reply.text
    before = await site(api, "Kept")
    text = (
        HEADER
        + row("Kept", subnets(pub("40.0.0.0", 99)), "changed")
        + row("Fresh", subnets(pub("20.1.0.0", 16)), "new")
        + row("Internet", subnets(pub("50.0.0.0", 8)))
    )
    report = await import_ok(api, text)
    assert [r["status"] for r in report["rows"]] == ["error", "created", "error"]
    assert (report["created"], report["updated"], report["errors"]) == (1, 0, 2)
    assert await site(api, "Kept") == before
    assert (await site(api, "Fresh"))["description"] == "new"
