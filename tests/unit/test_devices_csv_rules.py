"""Device CSV rules without sockets (cloud.md "Devices and device groups"; PDMS-E guide,
"Managing Multiple Devices"): rows in, records and per-row errors out."""

from __future__ import annotations

from pathlib import Path

import pytest

from relay.cloud.rules.devices_csv import (
    FIXED_HEADERS,
    MAX_DEVICE_CSV_BYTES,
    MAX_DEVICE_ROWS,
    DeviceRecord,
    RowError,
    export_devices,
    merged_groups,
    merged_parameters,
    parse_device_rows,
)
from relay.cloud.rules.errors import RuleError
from relay.proto.csv.table import CsvError, CsvTable, read_table

GUIDE = Path(__file__).resolve().parents[1] / "fixtures" / "guide"
GROUPS = frozenset({"G1", "G2", "G3", "EPGroup1", "EPGroup2"})


def table(text: str | bytes) -> CsvTable:
    return read_table(text, max_rows=MAX_DEVICE_ROWS, max_bytes=MAX_DEVICE_CSV_BYTES)


def parse(
    text: str | bytes, groups: frozenset[str] = GROUPS
) -> tuple[list[DeviceRecord], list[RowError]]:
    return parse_device_rows(table(text), groups)


def one_record(text: str | bytes) -> DeviceRecord:
    records, errors = parse(text)
    assert errors == []
    assert len(records) == 1
    return records[0]


def one_error(text: str | bytes) -> RowError:
    records, errors = parse(text)
    assert records == []
    assert len(errors) == 1
    return errors[0]


def header_error(text: str) -> RuleError:
    with pytest.raises(RuleError) as caught:
        parse(text)
    return caught.value


# --- limits ---------------------------------------------------------------------------


def test_row_limit_is_fewer_than_ten_thousand() -> None:
    assert MAX_DEVICE_ROWS == 9_999


def test_ten_thousand_rows_do_not_read() -> None:
    with pytest.raises(CsvError) as caught:
        table("mac_address\n" + "".join(f"{i:012x}\n" for i in range(10_000)))
    assert caught.value.code == "too_many_rows"


def test_fixed_headers_are_the_guides() -> None:
    assert FIXED_HEADERS == (
        "mac_address",
        "serial_number",
        "endpoint_type",
        "endpoint_name",
        "endpoint_group",
    )


# --- the guide's examples -------------------------------------------------------------


def test_guide_two_line_example_reads_as_one_phone_with_eight_parameters() -> None:
    record = one_record((GUIDE / "devices_two_lines.csv").read_bytes())
    assert (record.row, record.key, record.mac, record.serial) == (
        2,
        "0004f23ea4e1",
        "0004f23ea4e1",
        None,
    )
    assert record.name == "SoundPoint-EA4E1"
    assert record.groups == ("EPGroup1", "EPGroup2")
    assert dict(record.parameters) == {
        "reg.1.address": "1000",
        "reg.1.displayname": "Jon Smith",
        "reg.1.auth.userId": "1000",
        "reg.1.auth.password": "1000",
        "reg.2.address": "1001",
        "reg.2.displayname": "Jon Smith1",
        "reg.2.auth.userId": "1001",
        "reg.2.auth.password": "1001",
    }


def test_guide_studio_example_reads_as_a_serial_keyed_device() -> None:
    record = one_record((GUIDE / "devices_studio.csv").read_bytes())
    assert record.key == "8218404c20ccf9"
    assert (record.mac, record.serial, record.type) == (
        "00e0db4c20cc",
        "8218404c20ccf9",
        "Polycom Studio",
    )
    assert record.name == "Jsmith_Studio"
    assert record.groups == ("EPGroup1", "EPGroup2")
    assert dict(record.parameters) == {}


def test_guide_hostname_example_reads_two_phones() -> None:
    records, errors = parse((GUIDE / "devices_hostname.csv").read_bytes())
    assert errors == []
    assert [(r.row, r.key, dict(r.parameters)) for r in records] == [
        (2, "0004f23ea4e1", {"device.hostname": "SoundPointA4E1"}),
        (3, "0004f24fd08e", {"device.hostname": "SoundPointD08E"}),
    ]


def test_guide_one_line_example_reads_the_line_address() -> None:
    record = one_record((GUIDE / "devices_one_line.csv").read_bytes())
    assert (record.key, dict(record.parameters)) == ("0004f24fd08e", {"reg.1.address": "1001"})


def test_guide_header_template_is_refused_at_its_placeholder_column() -> None:
    with pytest.raises(RuleError) as caught:
        parse((GUIDE / "devices_header_template.csv").read_bytes())
    assert caught.value.code == "invalid_parameter"
    assert caught.value.message.startswith("column 10 header:")
    assert caught.value.field == "[any attribute name]"


# --- headers --------------------------------------------------------------------------


def test_file_needs_a_mac_or_serial_column() -> None:
    error = header_error("endpoint_name\nDesk\n")
    assert (error.code, error.field) == ("missing_header", "mac_address")


def test_serial_column_alone_is_enough() -> None:
    record = one_record("serial_number,endpoint_type\n8218404c20ccf9,Polycom Studio\n")
    assert record.key == "8218404c20ccf9"


def test_fixed_headers_are_case_insensitive_and_parameter_headers_keep_their_case() -> None:
    record = one_record("Reg.1.Label,ENDPOINT_NAME,Mac_Address\nx,Desk,0004f2000001\n")
    assert (record.key, record.name) == ("0004f2000001", "Desk")
    assert dict(record.parameters) == {"Reg.1.Label": "x"}


@pytest.mark.parametrize("header", ["1abc", "a b", "reg.1.label!", "FOO"])
def test_bad_parameter_header_refuses_the_file_naming_the_column(header: str) -> None:
    error = header_error(f"mac_address,{header}\n0004f2000001,1\n")
    assert error.message.startswith("column 2 header:")
    assert error.field == header


def test_master_file_attributes_are_parameter_columns() -> None:
    record = one_record("mac_address,CONFIG_FILES,_mac_cfg_extra\n0004f2000001,a.cfg,1\n")
    assert dict(record.parameters) == {"CONFIG_FILES": "a.cfg", "_mac_cfg_extra": "1"}


# --- identification ---------------------------------------------------------------------


def test_mac_is_lower_cased_and_is_the_key() -> None:
    record = one_record("mac_address\n0004F23EA4E1\n")
    assert (record.key, record.mac) == ("0004f23ea4e1", "0004f23ea4e1")


@pytest.mark.parametrize("mac", ["00:04:f2:3e:a4:e1", "zz", "0004f23ea4e", "0004f23ea4g1"])
def test_malformed_mac_is_a_row_error_in_column_mac_address(mac: str) -> None:
    error = one_error(f"mac_address\n{mac}\n")
    assert (error.row, error.key) == (2, mac)
    assert error.error.startswith("column mac_address:")


def test_mac_with_separators_gets_a_hint() -> None:
    assert "without ':' or '-'" in one_error("mac_address\n00-04-f2-3e-a4-e1\n").error


@pytest.mark.parametrize("serial", ["abc", "8218-404c", "x" * 65])
def test_malformed_serial_is_a_row_error_in_column_serial_number(serial: str) -> None:
    error = one_error(f"serial_number,endpoint_type\n{serial},Polycom Studio\n")
    assert error.error.startswith("column serial_number:")
    assert error.key == serial


def test_serial_without_endpoint_type_is_a_row_error() -> None:
    error = one_error("serial_number\n8218404c20ccf9\n")
    assert error.error.startswith("column endpoint_type:")
    assert error.key == "8218404c20ccf9"


def test_non_phone_without_serial_is_a_row_error() -> None:
    error = one_error("mac_address,endpoint_type\n00e0db4c20cc,Polycom Studio\n")
    assert error.error.startswith("column serial_number:")


def test_phone_type_with_only_a_serial_is_a_row_error() -> None:
    error = one_error("serial_number,endpoint_type\n8218404c20ccf9,VVX\n")
    assert "mac_address" in error.error


@pytest.mark.parametrize(
    ("given", "canonical"),
    [
        ("vvx", "VVX"),
        ("SOUNDSTATION", "SoundStation"),
        ("soundpoint", "SoundPoint"),
        ("SoundStructure VoIP Interface", "SoundStructure VoIP Interface"),
        ("polycom trio", "Polycom Trio"),
        ("cx", "CX"),
    ],
)
def test_phone_endpoint_types_are_canonicalized(given: str, canonical: str) -> None:
    record = one_record(f"mac_address,endpoint_type\n0004f2000001,{given}\n")
    assert (record.key, record.type) == ("0004f2000001", canonical)


def test_unknown_endpoint_type_is_a_row_error() -> None:
    assert one_error("mac_address,endpoint_type\n0004f2000001,Fax\n").error.startswith(
        "column endpoint_type:"
    )


def test_row_error_key_falls_back_to_the_serial() -> None:
    error = one_error("mac_address,serial_number\n,8218404c20ccf9\n")
    assert error.key == "8218404c20ccf9"


# --- names, groups, parameters ----------------------------------------------------------


def test_empty_name_means_keep() -> None:
    assert one_record("mac_address,endpoint_name\n0004f2000001,\n").name is None


@pytest.mark.parametrize("name", ["Jon Smith", "a/b", "caf\u00e9", "x" * 129])
def test_name_outside_the_allowed_characters_is_a_row_error(name: str) -> None:
    error = one_error(f'mac_address,endpoint_name\n0004f2000001,"{name}"\n')
    assert error.error.startswith("column endpoint_name:")


def test_name_with_every_allowed_character_is_kept() -> None:
    name = "Az09#.-_()[]"
    assert one_record(f"mac_address,endpoint_name\n0004f2000001,{name}\n").name == name


def test_groups_are_none_without_the_column() -> None:
    assert one_record("mac_address\n0004f2000001\n").groups is None


def test_empty_group_cell_is_an_empty_association() -> None:
    assert one_record("mac_address,endpoint_group\n0004f2000001,\n").groups == ()


def test_groups_split_on_bars_in_order_with_spaces_trimmed() -> None:
    record = one_record("mac_address,endpoint_group\n0004f2000001,G2 | G1|G3|\n")
    assert record.groups == ("G2", "G1", "G3")


def test_unknown_group_is_a_row_error_naming_it() -> None:
    error = one_error("mac_address,endpoint_group\n0004f2000001,G1|Nope\n")
    assert error.error.startswith("column endpoint_group:") and "'Nope'" in error.error


def test_group_name_outside_the_allowed_characters_is_a_row_error() -> None:
    error = one_error("mac_address,endpoint_group\n0004f2000001,G 1\n")
    assert error.error.startswith("column endpoint_group:")


def test_group_listed_twice_is_a_row_error() -> None:
    error = one_error("mac_address,endpoint_group\n0004f2000001,G1|G1\n")
    assert error.error.startswith("column endpoint_group:")


def test_groups_are_matched_case_sensitively() -> None:
    assert "'g1'" in one_error("mac_address,endpoint_group\n0004f2000001,g1\n").error


def test_empty_parameter_cells_are_left_out() -> None:
    record = one_record("mac_address,a.a,b.b\n0004f2000001,,2\n")
    assert dict(record.parameters) == {"b.b": "2"}


def test_factory_admin_password_is_a_row_error() -> None:
    error = one_error("mac_address,device.auth.localAdminPassword\n0004f2000001,456\n")
    assert "device.auth.localAdminPassword" in error.error


def test_quoted_values_keep_separators_quotes_spaces_and_line_breaks() -> None:
    text = 'mac_address,a.a,b.b,c.c\n0004f2000001,"x, y; z","  ""q""  ","1\n2"\n'
    record = one_record(text)
    assert dict(record.parameters) == {"a.a": "x, y; z", "b.b": '  "q"  ', "c.c": "1\n2"}


# --- rows together -------------------------------------------------------------------------


def test_second_row_for_the_same_device_is_an_error_naming_the_first() -> None:
    records, errors = parse("mac_address,a.a\n0004f2000001,1\n0004F2000001,2\n")
    assert [r.row for r in records] == [2]
    assert errors == [RowError(3, "0004f2000001", "same device as row 2; row ignored")]


def test_same_serial_in_two_rows_is_a_duplicate() -> None:
    studio = "8218404c20ccf9,Polycom Studio\n"
    text = "serial_number,endpoint_type\n" + studio + studio
    records, errors = parse(text)
    assert len(records) == 1 and [e.row for e in errors] == [3]


def test_unreadable_rows_become_errors_in_row_order() -> None:
    text = 'mac_address,a.a\nzz,1\n0004f2000001,"x"y\n0004f2000002,1,2\n0004f2000003,ok\n'
    records, errors = parse(text)
    assert [r.key for r in records] == ["0004f2000003"]
    assert [e.row for e in errors] == [2, 3, 4]
    assert [e.key for e in errors] == ["zz", "", ""]
    assert "column 2 (a.a)" in errors[1].error


def test_good_rows_survive_bad_ones() -> None:
    records, errors = parse("mac_address\nzz\n0004f2000001\nyy\n0004f2000002\n")
    assert [r.key for r in records] == ["0004f2000001", "0004f2000002"]
    assert [e.row for e in errors] == [2, 4]


# --- update modes ---------------------------------------------------------------------------


def test_overwrite_parameters_are_the_files() -> None:
    assert merged_parameters("overwrite", {"a": "1", "b": "2"}, {"b": "20", "c": "3"}) == {
        "b": "20",
        "c": "3",
    }


def test_merge_parameters_update_given_keep_rest_add_new() -> None:
    assert merged_parameters("merge", {"a": "1", "b": "2"}, {"b": "20", "c": "3"}) == {
        "a": "1",
        "b": "20",
        "c": "3",
    }


def test_merging_parameters_does_not_change_the_inputs() -> None:
    existing, given = {"a": "1"}, {"b": "2"}
    merged_parameters("merge", existing, given)
    merged_parameters("overwrite", existing, given)
    assert (existing, given) == ({"a": "1"}, {"b": "2"})


@pytest.mark.parametrize("mode", ["overwrite", "merge"])
def test_no_group_column_keeps_the_groups(mode: str) -> None:
    assert merged_groups(mode, ["G1", "G2"], None) == ["G1", "G2"]


def test_overwrite_groups_are_the_files() -> None:
    assert merged_groups("overwrite", ["G1", "G2"], ("G3", "G1")) == ["G3", "G1"]
    assert merged_groups("overwrite", ["G1"], ()) == []


def test_merge_groups_append_new_ones_after_existing() -> None:
    assert merged_groups("merge", ["G2", "G1"], ("G3", "G1")) == ["G2", "G1", "G3"]
    assert merged_groups("merge", ["G1"], ()) == ["G1"]


# --- export ------------------------------------------------------------------------------


def test_export_writes_fixed_headers_then_sorted_parameter_names() -> None:
    devices = [
        {"id": "0004f2000001", "mac": "0004f2000001", "serial": None, "type": "VVX", "name": "D1"},
        {
            "id": "8218404c20ccf9",
            "mac": None,
            "serial": "8218404c20ccf9",
            "type": "Polycom Studio",
            "name": "",
        },
    ]
    text = export_devices(
        devices,
        {"0004f2000001": ["G2", "G1"]},
        {"0004f2000001": {"z.z": "1", "a.a": "2"}, "8218404c20ccf9": {"m.m": "3"}},
    )
    assert text == (
        "mac_address,serial_number,endpoint_type,endpoint_name,endpoint_group,a.a,m.m,z.z\n"
        "0004f2000001,,VVX,D1,G2|G1,2,,1\n"
        ",8218404c20ccf9,Polycom Studio,,,,3,\n"
    )


def test_export_quotes_values_that_need_it() -> None:
    devices = [{"id": "0004f2000001", "mac": "0004f2000001", "name": "D1"}]
    text = export_devices(devices, {}, {"0004f2000001": {"a.a": ' x;"y",\n '}}, ";")
    assert text.splitlines()[0].split(";")[-1] == "a.a"
    assert text.endswith(';" x;""y"",\n "\n')


def test_export_without_devices_is_the_header() -> None:
    assert export_devices([], {}, {}) == ",".join(FIXED_HEADERS) + "\n"


@pytest.mark.parametrize("separator", [",", ";", "\t"])
def test_export_reads_back_as_the_same_records(separator: str) -> None:
    devices = [
        {"id": "0004f2000001", "mac": "0004f2000001", "serial": None, "type": None, "name": "D-1"},
        {
            "id": "8218404c20ccf9",
            "mac": "00e0db4c20cc",
            "serial": "8218404c20ccf9",
            "type": "Polycom Studio",
            "name": "S",
        },
    ]
    groups = {"0004f2000001": ["G1", "G2"], "8218404c20ccf9": ["G3"]}
    params = {"0004f2000001": {"a.a": " lead", "b.b": 'q"uo,te;\nnl'}}
    text = export_devices(devices, groups, params, separator)
    parsed = read_table(text, max_rows=MAX_DEVICE_ROWS, max_bytes=MAX_DEVICE_CSV_BYTES)
    assert parsed.separator == separator
    records, errors = parse_device_rows(parsed, GROUPS)
    assert errors == []
    assert [
        (r.key, r.mac, r.serial, r.type, r.name, r.groups, dict(r.parameters)) for r in records
    ] == [
        ("0004f2000001", "0004f2000001", None, None, "D-1", ("G1", "G2"), params["0004f2000001"]),
        ("8218404c20ccf9", "00e0db4c20cc", "8218404c20ccf9", "Polycom Studio", "S", ("G3",), {}),
    ]
