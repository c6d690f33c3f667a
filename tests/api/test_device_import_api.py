"""Device CSV import and export over the REST API (issue 2; cloud.md "Devices and device
groups"; PDMS-E guide, "Managing Multiple Devices").

`POST /api/v1/devices/import?update=skip|overwrite|merge` takes the CSV as the body and
answers a per-row report; `GET /api/v1/devices/export?separator=` writes the same format
back.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from relay.proto.csv.table import read_table
from tests.api.conftest import CSV, Api, Reply, error_of, only_row, post_large

GUIDE = Path(__file__).resolve().parents[1] / "fixtures" / "guide"
MAC = "0004f23ea4e1"
CSV_PROFILE = f"{MAC}_csv_profile"


async def import_devices(
    api: Api,
    data: str | bytes,
    update: str | None = None,
    separator: str | None = None,
) -> Reply:
    params: dict[str, str] = {}
    if update is not None:
        params["update"] = update
    if separator is not None:
        params["separator"] = separator
    return await api.post("/devices/import", data=data, content_type=CSV, params=params or None)


async def import_ok(api: Api, data: str | bytes, update: str | None = None) -> dict[str, Any]:
    reply = await import_devices(api, data, update)
    assert reply.status == 200, reply.text
    body: dict[str, Any] = reply.body
    return body


async def make_groups(api: Api, *names: str) -> None:
    for name in names:
        reply = await api.post("/device-groups", {"name": name})
        assert reply.status == 201, reply.text


async def device(api: Api, key: str) -> dict[str, Any]:
    reply = await api.get(f"/devices/{key}")
    assert reply.status == 200, reply.text
    body: dict[str, Any] = reply.body
    return body


async def csv_parameters(api: Api, key: str) -> dict[str, str] | None:
    """The parameters of the device's csv profile, or None when it has none."""
    reply = await api.get(f"/profiles/{key}_csv_profile")
    if reply.status == 404:
        return None
    assert reply.status == 200, reply.text
    params: dict[str, str] = reply.body["parameters"]
    return params


async def device_count(api: Api) -> int:
    reply = await api.get("/devices")
    assert reply.status == 200, reply.text
    count: int = reply.body["total"]
    return count


# --- the guide's examples ----------------------------------------------------------


async def test_guide_two_line_phone_example_creates_the_device_its_groups_and_profile(
    api: Api,
) -> None:
    await make_groups(api, "EPGroup1", "EPGroup2")
    report = await import_ok(api, (GUIDE / "devices_two_lines.csv").read_bytes())
    assert report["rows"] == [{"row": 2, "key": MAC, "status": "created"}]
    found = await device(api, MAC)
    assert found["name"] == "SoundPoint-EA4E1"
    assert found["groups"] == ["EPGroup1", "EPGroup2"]
    assert await csv_parameters(api, MAC) == {
        "reg.1.address": "1000",
        "reg.1.displayname": "Jon Smith",
        "reg.1.auth.userId": "1000",
        "reg.1.auth.password": "1000",
        "reg.2.address": "1001",
        "reg.2.displayname": "Jon Smith1",
        "reg.2.auth.userId": "1001",
        "reg.2.auth.password": "1001",
    }


async def test_guide_two_line_phone_example_without_its_groups_is_a_row_error(api: Api) -> None:
    report = await import_ok(api, (GUIDE / "devices_two_lines.csv").read_bytes())
    row = only_row(report)
    assert row["row"] == 2 and row["status"] == "error"
    assert "endpoint_group" in row["error"] and "EPGroup1" in row["error"]
    assert (await api.get(f"/devices/{MAC}")).status == 404


async def test_guide_one_line_example_sets_the_line_address(api: Api) -> None:
    report = await import_ok(api, (GUIDE / "devices_one_line.csv").read_bytes())
    assert report["rows"] == [{"row": 2, "key": "0004f24fd08e", "status": "created"}]
    assert await csv_parameters(api, "0004f24fd08e") == {"reg.1.address": "1001"}


async def test_guide_hostname_example_creates_one_profile_per_device(api: Api) -> None:
    report = await import_ok(api, (GUIDE / "devices_hostname.csv").read_bytes())
    assert report["created"] == 2 and report["errors"] == 0
    assert await csv_parameters(api, "0004f23ea4e1") == {"device.hostname": "SoundPointA4E1"}
    assert await csv_parameters(api, "0004f24fd08e") == {"device.hostname": "SoundPointD08E"}


async def test_guide_studio_example_is_keyed_by_its_serial_number(api: Api) -> None:
    await make_groups(api, "EPGroup1", "EPGroup2")
    report = await import_ok(api, (GUIDE / "devices_studio.csv").read_bytes())
    assert report["rows"] == [{"row": 2, "key": "8218404c20ccf9", "status": "created"}]
    found = await device(api, "8218404c20ccf9")
    assert found["type"] == "Polycom Studio"
    assert found["mac"] == "00e0db4c20cc"
    assert found["name"] == "Jsmith_Studio"
    assert found["groups"] == ["EPGroup1", "EPGroup2"]
    assert found["csv_profile"] is None


async def test_guide_header_template_is_refused_naming_the_placeholder_column(api: Api) -> None:
    reply = await import_devices(api, (GUIDE / "devices_header_template.csv").read_bytes())
    assert reply.status == 422
    error = error_of(reply)
    assert "column 10" in error["message"]
    assert "[any attribute name]" in error["message"]
    assert await device_count(api) == 0


# --- identification and columns ------------------------------------------------------


async def test_report_lists_every_row_with_key_status_and_totals(api: Api) -> None:
    await import_ok(api, "mac_address\n0004f2000001\n")
    report = await import_ok(api, "mac_address\n0004f2000001\n0004f2000002\nzz\n")
    error = report["rows"][2].pop("error")
    assert error.startswith("column mac_address:")
    assert report == {
        "rows": [
            {"row": 2, "key": "0004f2000001", "status": "skipped"},
            {"row": 3, "key": "0004f2000002", "status": "created"},
            {"row": 4, "key": "zz", "status": "error"},
        ],
        "created": 1,
        "updated": 0,
        "skipped": 1,
        "errors": 1,
    }


async def test_mac_is_stored_in_lower_case(api: Api) -> None:
    report = await import_ok(api, "mac_address\n0004F23EA4E1\n")
    assert only_row(report)["key"] == MAC
    assert (await device(api, "0004F23EA4E1"))["mac"] == MAC


async def test_file_without_mac_or_serial_column_is_refused(api: Api) -> None:
    reply = await import_devices(api, "endpoint_name,reg.1.address\nDesk,1000\n")
    assert reply.status == 422
    error = error_of(reply)
    assert error["code"] == "missing_header"
    assert "mac_address" in error["message"] and "serial_number" in error["message"]
    assert await device_count(api) == 0


async def test_serial_number_without_endpoint_type_is_a_row_error(api: Api) -> None:
    report = await import_ok(api, "serial_number\n8218404c20ccf9\n")
    row = only_row(report)
    assert row["status"] == "error"
    assert "endpoint_type" in row["error"]
    assert await device_count(api) == 0


async def test_non_phone_endpoint_type_needs_a_serial_number(api: Api) -> None:
    report = await import_ok(api, "mac_address,endpoint_type\n00e0db4c20cc,Polycom Studio\n")
    row = only_row(report)
    assert row["status"] == "error"
    assert "serial_number" in row["error"]
    assert await device_count(api) == 0


async def test_phone_endpoint_type_is_optional_and_kept_when_given(api: Api) -> None:
    report = await import_ok(api, "mac_address,endpoint_type\n0004f2000001,vvx\n0004f2000002,\n")
    assert report["created"] == 2
    assert (await device(api, "0004f2000001"))["type"] == "VVX"
    assert (await device(api, "0004f2000002"))["type"] is None


async def test_unknown_endpoint_type_is_a_row_error(api: Api) -> None:
    report = await import_ok(api, "mac_address,endpoint_type\n0004f2000001,Toaster\n")
    row = only_row(report)
    assert row["status"] == "error"
    assert "endpoint_type" in row["error"] and "Toaster" in row["error"]


async def test_headers_are_case_and_order_insensitive(api: Api) -> None:
    await make_groups(api, "G1")
    text = "reg.1.address,ENDPOINT_GROUP,Endpoint_Name,MAC_Address\n1000,G1,Desk-1,0004f2000001\n"
    report = await import_ok(api, text)
    assert report["created"] == 1
    found = await device(api, "0004f2000001")
    assert (found["name"], found["groups"]) == ("Desk-1", ["G1"])
    assert await csv_parameters(api, "0004f2000001") == {"reg.1.address": "1000"}


@pytest.mark.parametrize("separator", [",", ";", "\t"], ids=["comma", "semicolon", "tab"])
async def test_each_separator_kind_is_detected(api: Api, separator: str) -> None:
    text = separator.join(["mac_address", "endpoint_name", "reg.1.label"]) + "\n"
    text += separator.join(["0004f2000001", "Desk-1", "Front desk"]) + "\n"
    report = await import_ok(api, text)
    assert report["created"] == 1
    assert (await device(api, "0004f2000001"))["name"] == "Desk-1"
    assert await csv_parameters(api, "0004f2000001") == {"reg.1.label": "Front desk"}


async def test_separator_can_be_forced_by_query(api: Api) -> None:
    reply = await import_devices(api, "mac_address;reg.1.label\n0004f2000001;a,b\n", separator=";")
    assert reply.status == 200, reply.text
    assert await csv_parameters(api, "0004f2000001") == {"reg.1.label": "a,b"}


async def test_separator_tab_can_be_forced_by_name_as_on_export(api: Api) -> None:
    reply = await import_devices(
        api, "mac_address\treg.1.label\n0004f2000001\ta,b\n", separator="tab"
    )
    assert reply.status == 200, reply.text
    assert await csv_parameters(api, "0004f2000001") == {"reg.1.label": "a,b"}


async def test_unknown_forced_separator_is_refused_naming_it(api: Api) -> None:
    reply = await import_devices(api, f"mac_address\n{MAC}\n", separator="|")
    assert reply.status in (400, 422)
    assert "'|'" in error_of(reply)["message"]
    assert await device_count(api) == 0


async def test_quoted_fields_keep_separators_quotes_and_line_breaks(api: Api) -> None:
    text = (
        "mac_address,reg.1.label,reg.2.label,reg.3.label\n"
        '0004f2000001,"a, b; c","say ""hi""","line one\nline two"\n'
    )
    report = await import_ok(api, text)
    assert report["created"] == 1
    assert await csv_parameters(api, "0004f2000001") == {
        "reg.1.label": "a, b; c",
        "reg.2.label": 'say "hi"',
        "reg.3.label": "line one\nline two",
    }


async def test_whitespace_around_unquoted_values_is_trimmed(api: Api) -> None:
    text = " mac_address , endpoint_name , reg.1.label \n  0004F2000001  ,  Desk-1 \t,  a b  \n"
    report = await import_ok(api, text)
    assert only_row(report)["key"] == "0004f2000001"
    assert (await device(api, "0004f2000001"))["name"] == "Desk-1"
    assert await csv_parameters(api, "0004f2000001") == {"reg.1.label": "a b"}


async def test_spaces_inside_quotes_are_kept(api: Api) -> None:
    await import_ok(api, 'mac_address,reg.1.label\n0004f2000001,  "  padded  "  \n')
    assert await csv_parameters(api, "0004f2000001") == {"reg.1.label": "  padded  "}


async def test_blank_lines_are_ignored_and_row_numbers_count_records(api: Api) -> None:
    report = await import_ok(api, "mac_address\n\n0004f2000001\n\n\nzz\n")
    assert [(r["row"], r["status"]) for r in report["rows"]] == [(2, "created"), (3, "error")]


async def test_utf8_bom_is_accepted(api: Api) -> None:
    report = await import_ok(api, b"\xef\xbb\xbfmac_address\r\n0004f2000001\r\n")
    assert report["created"] == 1


# --- the csv profile -----------------------------------------------------------------


async def test_parameters_go_into_an_imported_profile_named_after_the_mac(api: Api) -> None:
    await import_ok(api, f"mac_address,reg.1.address\n{MAC},1000\n")
    reply = await api.get(f"/profiles/{CSV_PROFILE}")
    assert reply.status == 200
    assert reply.body["type"] == "imported"
    assert reply.body["device"] == MAC
    assert reply.body["parameters"] == {"reg.1.address": "1000"}
    assert (await device(api, MAC))["csv_profile"] == CSV_PROFILE


async def test_serial_device_parameters_go_into_a_profile_named_after_the_serial(
    api: Api,
) -> None:
    text = "serial_number,endpoint_type,device.hostname\n8218404c20ccf9,Polycom Studio,Room-1\n"
    await import_ok(api, text)
    reply = await api.get("/profiles/8218404c20ccf9_csv_profile")
    assert reply.status == 200
    assert reply.body["device"] == "8218404c20ccf9"
    assert reply.body["parameters"] == {"device.hostname": "Room-1"}


async def test_row_without_parameter_values_makes_no_profile(api: Api) -> None:
    await import_ok(api, f"mac_address,reg.1.address\n{MAC},\n")
    assert (await device(api, MAC))["csv_profile"] is None
    assert (await api.get(f"/profiles/{CSV_PROFILE}")).status == 404


async def test_csv_profile_is_the_top_of_the_effective_config_at_container_device(
    api: Api,
) -> None:
    await import_ok(api, f"mac_address,device.hostname\n{MAC},from-csv\n")
    reply = await api.post(
        "/profiles", {"name": "Hostnames", "parameters": {"device.hostname": "from-user"}}
    )
    assert reply.status == 201, reply.text
    for container, key in (("device", MAC), ("global", "-")):
        reply = await api.put(f"/deployment/{container}/{key}", {"profiles": ["Hostnames"]})
        assert reply.status == 200, reply.text
    reply = await api.get(f"/devices/{MAC}/effective-config")
    assert reply.status == 200
    assert reply.body["chain"][0] == {"container": "device", "key": MAC, "profile": CSV_PROFILE}
    assert reply.body["chain"][1] == {"container": "device", "key": MAC, "profile": "Hostnames"}
    assert reply.body["parameters"]["device.hostname"] == {
        "value": "from-csv",
        "profile": CSV_PROFILE,
        "container": "device",
    }


@pytest.mark.parametrize(
    ("container", "key"),
    [
        ("global", "-"),
        ("group", "G1"),
        ("site", "Intranet"),
        ("model", "VVX500"),
        ("device", "0004f2000002"),
        ("device", MAC),
    ],
)
async def test_csv_profile_cannot_be_bound_anywhere(api: Api, container: str, key: str) -> None:
    await make_groups(api, "G1")
    await import_ok(api, f"mac_address,reg.1.address\n{MAC},1000\n0004f2000002,1001\n")
    reply = await api.put(f"/deployment/{container}/{key}", {"profiles": [CSV_PROFILE]})
    assert reply.status == 422
    error = error_of(reply)
    assert error["code"] == "csv_profile_not_bindable"
    assert error["field"] == "profiles[0]"
    assert CSV_PROFILE not in (await api.get(f"/deployment/{container}/{key}")).body["profiles"]


async def test_deleting_the_device_deletes_its_csv_profile(api: Api) -> None:
    await import_ok(api, f"mac_address,reg.1.address\n{MAC},1000\n")
    assert (await api.delete(f"/devices/{MAC}")).status == 204
    assert (await api.get(f"/profiles/{CSV_PROFILE}")).status == 404
    listed = (await api.get("/profiles", params={"type": "imported"})).body
    assert [p["name"] for p in listed] == []


async def test_deleting_the_csv_profile_keeps_the_device_and_unbinds_it(api: Api) -> None:
    await import_ok(api, f"mac_address,reg.1.address\n{MAC},1000\n")
    assert (await api.delete(f"/profiles/{CSV_PROFILE}")).status == 204
    assert (await device(api, MAC))["csv_profile"] is None
    chain = (await api.get(f"/devices/{MAC}/effective-config")).body["chain"]
    assert CSV_PROFILE not in [link["profile"] for link in chain]


async def test_csv_imported_devices_do_not_join_the_default_groups(api: Api) -> None:
    await make_groups(api, "Defaults")
    assert (await api.put("/default-device-groups", ["Defaults"])).status == 200
    await import_ok(api, f"mac_address\n{MAC}\n")
    assert (await device(api, MAC))["groups"] == []


# --- existing devices: skip, overwrite, merge -----------------------------------------


@pytest.mark.parametrize("update", [None, "skip"], ids=["default", "explicit"])
async def test_existing_device_is_skipped_unless_update_is_chosen(
    api: Api, update: str | None
) -> None:
    await make_groups(api, "G1", "G2")
    await import_ok(api, f"mac_address,endpoint_name,endpoint_group,a.b\n{MAC},Old,G1,1\n")
    report = await import_ok(
        api, f"mac_address,endpoint_name,endpoint_group,a.b,c.d\n{MAC},New,G2,2,3\n", update
    )
    assert report["rows"] == [{"row": 2, "key": MAC, "status": "skipped"}]
    assert (report["skipped"], report["updated"]) == (1, 0)
    found = await device(api, MAC)
    assert (found["name"], found["groups"]) == ("Old", ["G1"])
    assert await csv_parameters(api, MAC) == {"a.b": "1"}


async def test_overwrite_replaces_the_csv_profile_parameters(api: Api) -> None:
    await import_ok(api, f"mac_address,a.a,b.b\n{MAC},1,2\n")
    report = await import_ok(api, f"mac_address,b.b,c.c\n{MAC},20,30\n", "overwrite")
    assert report["rows"] == [{"row": 2, "key": MAC, "status": "updated"}]
    assert await csv_parameters(api, MAC) == {"b.b": "20", "c.c": "30"}


async def test_overwrite_drops_parameters_left_empty(api: Api) -> None:
    await import_ok(api, f"mac_address,a.a,b.b\n{MAC},1,2\n")
    await import_ok(api, f"mac_address,a.a,b.b\n{MAC},1,\n", "overwrite")
    assert await csv_parameters(api, MAC) == {"a.a": "1"}


async def test_overwrite_without_parameters_removes_the_csv_profile(api: Api) -> None:
    await import_ok(api, f"mac_address,a.a\n{MAC},1\n")
    await import_ok(api, f"mac_address,endpoint_name\n{MAC},Desk\n", "overwrite")
    assert await csv_parameters(api, MAC) is None
    assert (await device(api, MAC))["csv_profile"] is None


async def test_overwrite_replaces_the_group_associations(api: Api) -> None:
    await make_groups(api, "G1", "G2", "G3")
    await import_ok(api, f"mac_address,endpoint_group\n{MAC},G1|G2\n")
    await import_ok(api, f"mac_address,endpoint_group\n{MAC},G3|G1\n", "overwrite")
    assert (await device(api, MAC))["groups"] == ["G3", "G1"]


async def test_overwrite_with_an_empty_group_cell_clears_the_groups(api: Api) -> None:
    await make_groups(api, "G1")
    await import_ok(api, f"mac_address,endpoint_group\n{MAC},G1\n")
    await import_ok(api, f"mac_address,endpoint_group,a.a\n{MAC},,1\n", "overwrite")
    assert (await device(api, MAC))["groups"] == []


async def test_overwrite_updates_the_name(api: Api) -> None:
    await import_ok(api, f"mac_address,endpoint_name\n{MAC},Old\n")
    await import_ok(api, f"mac_address,endpoint_name\n{MAC},New\n", "overwrite")
    assert (await device(api, MAC))["name"] == "New"


async def test_merge_updates_given_values_keeps_the_rest_and_adds_new_ones(api: Api) -> None:
    await import_ok(api, f"mac_address,a.a,b.b\n{MAC},1,2\n")
    report = await import_ok(api, f"mac_address,b.b,c.c\n{MAC},20,30\n", "merge")
    assert report["rows"] == [{"row": 2, "key": MAC, "status": "updated"}]
    assert await csv_parameters(api, MAC) == {"a.a": "1", "b.b": "20", "c.c": "30"}


async def test_merge_keeps_parameters_left_empty(api: Api) -> None:
    await import_ok(api, f"mac_address,a.a,b.b\n{MAC},1,2\n")
    await import_ok(api, f"mac_address,a.a,b.b\n{MAC},,20\n", "merge")
    assert await csv_parameters(api, MAC) == {"a.a": "1", "b.b": "20"}


async def test_merge_adds_new_groups_after_the_existing_ones(api: Api) -> None:
    await make_groups(api, "G1", "G2", "G3")
    await import_ok(api, f"mac_address,endpoint_group\n{MAC},G2|G1\n")
    await import_ok(api, f"mac_address,endpoint_group\n{MAC},G3|G1\n", "merge")
    assert (await device(api, MAC))["groups"] == ["G2", "G1", "G3"]


async def test_merge_without_a_group_column_keeps_the_groups(api: Api) -> None:
    await make_groups(api, "G1")
    await import_ok(api, f"mac_address,endpoint_group\n{MAC},G1\n")
    await import_ok(api, f"mac_address,a.a\n{MAC},1\n", "merge")
    assert (await device(api, MAC))["groups"] == ["G1"]


async def test_update_gives_a_manually_added_device_a_csv_profile(api: Api) -> None:
    assert (await api.post("/devices", {"mac": MAC, "name": "Manual"})).status == 201
    report = await import_ok(api, f"mac_address,a.a\n{MAC},1\n", "merge")
    assert only_row(report)["status"] == "updated"
    assert (await device(api, MAC))["name"] == "Manual"
    assert await csv_parameters(api, MAC) == {"a.a": "1"}


async def test_unknown_update_mode_is_refused(api: Api) -> None:
    reply = await import_devices(api, f"mac_address\n{MAC}\n", "replace")
    assert reply.status == 400
    assert error_of(reply)["field"] == "update"
    assert await device_count(api) == 0


# --- bad input -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "mac",
    [
        "00:04:f2:3e:a4:e1",
        "00-04-f2-3e-a4-e1",
        "zz",
        "0004f23ea4e",
        "0004f23ea4e1a",
        "0004f23ea4g1",
    ],
)
async def test_malformed_mac_is_a_row_error_naming_the_column(api: Api, mac: str) -> None:
    report = await import_ok(api, f"mac_address\n{mac}\n")
    row = only_row(report)
    assert (row["row"], row["key"], row["status"]) == (2, mac, "error")
    assert "mac_address" in row["error"] and mac in row["error"]
    assert await device_count(api) == 0


async def test_mac_with_colons_gets_a_hint_to_drop_them(api: Api) -> None:
    report = await import_ok(api, "mac_address\n00:04:f2:3e:a4:e1\n")
    assert "without ':'" in only_row(report)["error"]


@pytest.mark.parametrize("name", ["Jon Smith", "desk/1", "caf\u00e9", "a,b", "x|y"])
async def test_endpoint_name_with_forbidden_characters_is_a_row_error(api: Api, name: str) -> None:
    text = f'mac_address,endpoint_name\n{MAC},"{name}"\n'
    report = await import_ok(api, text)
    row = only_row(report)
    assert row["status"] == "error"
    assert "endpoint_name" in row["error"]
    assert await device_count(api) == 0


async def test_unknown_group_is_a_row_error_naming_the_group(api: Api) -> None:
    await make_groups(api, "G1")
    report = await import_ok(api, f"mac_address,endpoint_group\n{MAC},G1|Nowhere\n")
    row = only_row(report)
    assert row["status"] == "error"
    assert "endpoint_group" in row["error"] and "Nowhere" in row["error"]
    assert await device_count(api) == 0


async def test_group_listed_twice_is_a_row_error(api: Api) -> None:
    await make_groups(api, "G1")
    report = await import_ok(api, f"mac_address,endpoint_group\n{MAC},G1|G1\n")
    assert "endpoint_group" in only_row(report)["error"]


async def test_mixed_separators_in_the_header_refuse_the_file(api: Api) -> None:
    reply = await import_devices(api, f"mac_address;endpoint_name,a.a\n{MAC};Desk,1\n")
    assert reply.status == 422
    error = error_of(reply)
    assert "mixed separators" in error["message"] and "row 1" in error["message"]
    assert await device_count(api) == 0


async def test_row_using_another_separator_is_a_row_error_and_the_others_apply(
    api: Api,
) -> None:
    text = "mac_address,endpoint_name\n0004f2000001,Desk-1\n0004f2000002;Desk-2\n"
    report = await import_ok(api, text)
    assert [(r["row"], r["status"]) for r in report["rows"]] == [(2, "created"), (3, "error")]
    assert "';'" in report["rows"][1]["error"] and "row 3" in report["rows"][1]["error"]
    assert await device_count(api) == 1


async def test_row_with_more_fields_than_headers_is_a_row_error(api: Api) -> None:
    report = await import_ok(api, f"mac_address,a.a\n{MAC},1,2\n")
    row = only_row(report)
    assert row["status"] == "error" and "row 2" in row["error"]
    assert await device_count(api) == 0


async def test_unclosed_quote_is_a_row_error_naming_the_column(api: Api) -> None:
    report = await import_ok(api, f'mac_address,a.a\n0004f2000001,1\n{MAC},"open\n')
    assert [r["status"] for r in report["rows"]] == ["created", "error"]
    assert "column 2 (a.a)" in report["rows"][1]["error"]


async def test_invalid_parameter_header_refuses_the_file_naming_the_column(api: Api) -> None:
    reply = await import_devices(api, f"mac_address,1bad name\n{MAC},1\n")
    assert reply.status == 422
    assert "column 2" in error_of(reply)["message"]
    assert await device_count(api) == 0


async def test_duplicate_header_refuses_the_file(api: Api) -> None:
    reply = await import_devices(api, f"mac_address,a.a,A.A\n{MAC},1,2\n")
    assert reply.status == 422
    assert "same header name" in error_of(reply)["message"]


async def test_factory_admin_password_parameter_is_a_row_error(api: Api) -> None:
    text = f"mac_address,device.auth.localAdminPassword\n0004f2000001,s3cret\n{MAC},456\n"
    report = await import_ok(api, text)
    assert [r["status"] for r in report["rows"]] == ["created", "error"]
    assert "device.auth.localAdminPassword" in report["rows"][1]["error"]


@pytest.mark.parametrize(
    "mac2", ["0004f23ea4e1", "0004F23EA4E1", " 0004f23ea4e1 "], ids=["same", "case", "spaces"]
)
async def test_duplicate_rows_for_one_device_keep_the_first(api: Api, mac2: str) -> None:
    text = f"mac_address,a.a\n{MAC},first\n{mac2},second\n"
    report = await import_ok(api, text)
    assert [(r["row"], r["status"]) for r in report["rows"]] == [(2, "created"), (3, "error")]
    assert "row 2" in report["rows"][1]["error"]
    assert await csv_parameters(api, MAC) == {"a.a": "first"}


async def test_empty_body_is_refused(api: Api) -> None:
    reply = await import_devices(api, b"")
    assert reply.status == 422
    assert error_of(reply)["field"] == "body"


async def test_non_utf8_body_is_refused_with_the_offset(api: Api) -> None:
    reply = await import_devices(api, b"mac_address,a.a\n0004f23ea4e1,caf\xe9\n")
    assert reply.status == 422
    assert "UTF-8" in error_of(reply)["message"] and "line 2" in error_of(reply)["message"]
    assert await device_count(api) == 0


async def test_9999_rows_are_accepted(api: Api) -> None:
    body = "mac_address\n" + "".join(f"{i:012x}\n" for i in range(9_999))
    report = await import_ok(api, body)
    assert report["created"] == 9_999 and report["errors"] == 0


async def test_10000_rows_are_refused_with_413_and_nothing_applied(api: Api) -> None:
    body = "mac_address\n" + "".join(f"{i:012x}\n" for i in range(10_000))
    reply = await import_devices(api, body)
    assert reply.status == 413
    error = error_of(reply)
    assert error["code"] == "too_many_rows"
    assert "9999" in error["message"]
    assert await device_count(api) == 0


async def test_body_over_20_mb_is_a_413_json_error(api: Api) -> None:
    body = b"mac_address\n" + b"0004f23ea4e1\n" * (20 * 1024 * 1024 // 13 + 1)
    reply = await post_large(api, "/devices/import", body)
    assert reply.status == 413
    assert error_of(reply)["code"] == "too_large"
    assert await device_count(api) == 0


async def test_body_over_the_device_csv_limit_is_a_413_json_error(api: Api) -> None:
    body = b"mac_address\n" + b"0004f23ea4e1\n" * (17 * 1024 * 1024 // 13)
    reply = await post_large(api, "/devices/import", body)
    assert reply.status == 413
    error = error_of(reply)
    assert (error["code"], error["field"]) == ("too_large", "body")
    assert await device_count(api) == 0


async def test_bad_rows_are_reported_and_good_rows_applied(api: Api) -> None:
    await make_groups(api, "G1")
    text = (
        "mac_address,endpoint_name,endpoint_group,a.a\n"
        "0004f2000001,Desk-1,G1,1\n"
        "0004f2000002,Bad Name,G1,2\n"
        "0004f2000003,Desk-3,Missing,3\n"
        "0004f2000004,Desk-4,,4\n"
    )
    report = await import_ok(api, text)
    assert [r["status"] for r in report["rows"]] == ["created", "error", "error", "created"]
    assert (report["created"], report["errors"]) == (2, 2)
    for key in ("0004f2000002", "0004f2000003"):
        assert (await api.get(f"/devices/{key}")).status == 404
        assert await csv_parameters(api, key) is None
    assert (await api.get("/device-groups/G1")).body["devices"] == ["0004f2000001"]


async def test_new_device_row_failing_while_applied_leaves_nothing_behind(api: Api) -> None:
    await make_groups(api, "G1")
    taken = "0004f2000001_csv_profile"
    reply = await api.post("/profiles", {"name": taken, "parameters": {"x.y": "user"}})
    assert reply.status == 201, reply.text
    text = "mac_address,endpoint_group,a.a\n0004f2000001,G1,1\n0004f2000002,G1,2\n"
    report = await import_ok(api, text)
    assert [r["status"] for r in report["rows"]] == ["error", "created"]
    assert taken in report["rows"][0]["error"]
    assert (await api.get("/devices/0004f2000001")).status == 404
    assert (await api.get(f"/profiles/{taken}")).body["parameters"] == {"x.y": "user"}
    assert (await api.get("/device-groups/G1")).body["devices"] == ["0004f2000002"]


async def test_existing_device_row_failing_while_applied_changes_nothing(api: Api) -> None:
    await make_groups(api, "G1", "G2")
    reply = await api.post("/devices", {"mac": MAC, "name": "Old", "groups": ["G1"]})
    assert reply.status == 201, reply.text
    reply = await api.post("/profiles", {"name": CSV_PROFILE, "parameters": {"x.y": "user"}})
    assert reply.status == 201, reply.text
    text = f"mac_address,endpoint_name,endpoint_group,a.a\n{MAC},New,G2,1\n"
    report = await import_ok(api, text, "overwrite")
    assert only_row(report)["status"] == "error"
    found = await device(api, MAC)
    assert (found["name"], found["groups"]) == ("Old", ["G1"])
    assert (await api.get(f"/profiles/{CSV_PROFILE}")).body["parameters"] == {"x.y": "user"}


async def test_phone_row_reusing_a_studio_mac_is_a_row_error(api: Api) -> None:
    studio = "serial_number,mac_address,endpoint_type\n8218404c20ccf9,00e0db4c20cc,Polycom Studio\n"
    await import_ok(api, studio)
    reply = await import_devices(api, "mac_address\n00e0db4c20cc\n0004f2000001\n")
    assert reply.status == 200, reply.text
    rows = reply.body["rows"]
    assert [r["status"] for r in rows] == ["error", "created"]
    assert "00e0db4c20cc" in rows[0]["error"]


async def test_overwrite_updates_a_studio_mac(api: Api) -> None:
    head = "serial_number,mac_address,endpoint_type\n"
    await import_ok(api, head + "8218404c20ccf9,00e0db4c20cc,Polycom Studio\n")
    report = await import_ok(
        api, head + "8218404c20ccf9,00e0db4c20cd,Polycom Studio\n", "overwrite"
    )
    assert only_row(report)["status"] == "updated"
    assert (await device(api, "8218404c20ccf9"))["mac"] == "00e0db4c20cd"


async def test_studio_with_an_upper_case_hex_serial_is_reachable_by_it(api: Api) -> None:
    await import_ok(api, "serial_number,endpoint_type\nABCDEF012345,Polycom Studio\n")
    reply = await api.get("/devices/ABCDEF012345")
    assert reply.status == 200, reply.text
    assert reply.body["serial"] == "abcdef012345"  # stored lower case, like MACs


# --- export ----------------------------------------------------------------------------


async def test_export_writes_the_import_headers_then_the_parameters_sorted(api: Api) -> None:
    await make_groups(api, "G1", "G2")
    text = (
        "mac_address,endpoint_name,endpoint_group,reg.1.label,device.hostname\n"
        "0004f2000002,Desk-2,G2|G1,Two,host2\n"
        "0004f2000001,Desk-1,,,host1\n"
    )
    await import_ok(api, text)
    reply = await api.get("/devices/export")
    assert reply.status == 200
    assert reply.text == (
        "mac_address,serial_number,endpoint_type,endpoint_name,endpoint_group,"
        "device.hostname,reg.1.label\n"
        "0004f2000001,,,Desk-1,,host1,\n"
        "0004f2000002,,,Desk-2,G2|G1,host2,Two\n"
    )


async def test_export_is_a_csv_attachment(api: Api) -> None:
    reply = await api.get("/devices/export")
    assert reply.status == 200
    assert reply.headers["Content-Type"].startswith("text/csv")
    assert "attachment" in reply.headers["Content-Disposition"]
    assert reply.text == "mac_address,serial_number,endpoint_type,endpoint_name,endpoint_group\n"


async def test_export_holds_only_csv_profile_parameters(api: Api) -> None:
    await import_ok(api, f"mac_address,a.a\n{MAC},1\n")
    reply = await api.post("/profiles", {"name": "Mine", "parameters": {"z.z": "user"}})
    assert reply.status == 201
    assert (await api.put(f"/deployment/device/{MAC}", {"profiles": ["Mine"]})).status == 200
    text = (await api.get("/devices/export")).text
    assert "z.z" not in text and "user" not in text
    assert text.splitlines()[1] == f"{MAC},,,,,1"


async def test_export_with_semicolon_separator_quotes_only_what_needs_it(api: Api) -> None:
    text = f'mac_address,a.a,b.b\n{MAC},"x;y","p,q"\n'
    await import_ok(api, text)
    reply = await api.get("/devices/export", params={"separator": ";"})
    assert reply.status == 200
    assert reply.text == (
        "mac_address;serial_number;endpoint_type;endpoint_name;endpoint_group;a.a;b.b\n"
        f'{MAC};;;;;"x;y";"p,q"\n'
    )


async def test_export_with_tab_separator(api: Api) -> None:
    await import_ok(api, f"mac_address,a.a\n{MAC},1\n")
    reply = await api.get("/devices/export", params={"separator": "tab"})
    assert reply.status == 200
    assert reply.text.splitlines()[1] == f"{MAC}\t\t\t\t\t1"


async def test_export_with_unknown_separator_is_refused(api: Api) -> None:
    reply = await api.get("/devices/export", params={"separator": "|"})
    assert reply.status == 400
    assert error_of(reply)["field"] == "separator"


async def test_export_includes_the_studio_with_its_serial_and_type(api: Api) -> None:
    await make_groups(api, "EPGroup1", "EPGroup2")
    await import_ok(api, (GUIDE / "devices_studio.csv").read_bytes())
    lines = (await api.get("/devices/export")).text.splitlines()
    assert lines[1] == "00e0db4c20cc,8218404c20ccf9,Polycom Studio,Jsmith_Studio,EPGroup1|EPGroup2"


@pytest.mark.parametrize("separator", [",", ";", "tab"])
async def test_export_imports_back_unchanged(api: Api, separator: str) -> None:
    await make_groups(api, "EPGroup1", "EPGroup2")
    for name in ("devices_two_lines.csv", "devices_hostname.csv", "devices_studio.csv"):
        await import_ok(api, (GUIDE / name).read_bytes(), "merge")
    await import_ok(api, f'mac_address,a.a\n{MAC}," spaced, ""quoted""\nline"\n', "merge")
    before = (await api.get("/devices/export", params={"separator": separator})).text
    report = await import_ok(api, before, "overwrite")
    assert report["errors"] == 0 and report["updated"] == 3
    after = (await api.get("/devices/export", params={"separator": separator})).text
    assert after == before


async def test_edited_export_reimports_with_the_edits(api: Api) -> None:
    await import_ok(api, f"mac_address,endpoint_name,a.a\n{MAC},Old,1\n")
    exported = (await api.get("/devices/export")).text
    edited = exported.replace(f"{MAC},,,Old,,1", f"{MAC},,,New,,2")
    assert edited != exported
    report = await import_ok(api, edited, "overwrite")
    assert only_row(report)["status"] == "updated"
    assert (await device(api, MAC))["name"] == "New"
    assert await csv_parameters(api, MAC) == {"a.a": "2"}
    assert (await api.get("/devices/export")).text == edited


async def test_export_stays_readable_when_parameter_names_differ_only_in_case(api: Api) -> None:
    await import_ok(api, "mac_address,reg.1.label\n0004f2000001,a\n")
    await import_ok(api, "mac_address,Reg.1.label\n0004f2000002,b\n")
    reply = await api.get("/devices/export")
    assert reply.status == 200, reply.text
    table = read_table(reply.text, max_rows=10, max_bytes=1 << 20)
    assert len(table.rows) == 2


async def test_export_stays_readable_after_a_csv_profile_gets_a_fixed_header_name(
    api: Api,
) -> None:
    await import_ok(api, f"mac_address,a.a\n{MAC},1\n")
    patch = await api.patch(
        f"/profiles/{CSV_PROFILE}", {"add_parameters": {"endpoint_name": "from-profile"}}
    )
    assert patch.status in (200, 422), patch.text
    reply = await api.get("/devices/export")
    assert reply.status == 200, reply.text
    table = read_table(reply.text, max_rows=10, max_bytes=1 << 20)
    assert len(table.rows) == 1
