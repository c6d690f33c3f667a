"""Importers never crash on hostile input (cloud.md "Sites", "Devices and device groups",
"Configuration profiles").

Arbitrary bytes and CSV-ish text go into `devices.import_csv`, `sites.import_csv` and
`profiles.import_file`; the only exception allowed is `RuleError`, and a refused file
changes nothing. Each test drives one control plane through all of its examples, so later
examples meet the devices and sites earlier ones created.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from relay.cloud.controlplane import ControlPlane
from relay.cloud.imports import STATUSES
from relay.cloud.rules.devices_csv import UPDATE_MODES
from relay.cloud.rules.errors import RuleError
from relay.proto.csv.table import SEPARATORS

FUZZ = settings(max_examples=200, deadline=None)
separators = st.sampled_from([None, *SEPARATORS])


@contextmanager
def control_plane() -> Iterator[ControlPlane]:
    """A bootstrapped plane with a group, a phone, a Studio and a site to collide with."""
    with tempfile.TemporaryDirectory() as tmp:
        plane = ControlPlane(Path(tmp) / "data")
        try:
            plane.bootstrap()
            plane.groups.create({"name": "G1"}, "fuzz")
            plane.devices.create(
                {"mac": "0004f2000001", "groups": ["G1"], "public_ip": "20.1.2.3"}, "fuzz"
            )
            plane.devices.create(
                {"serial": "8218404c20ccf9", "mac": "00e0db4c20cc", "type": "Polycom Studio"},
                "fuzz",
            )
            plane.sites.create(
                {"name": "Branch", "public_subnets": [{"cidr": "20.1.0.0/16"}]}, "fuzz"
            )
            yield plane
        finally:
            plane.close()


def counts(plane: ControlPlane) -> tuple[int, int]:
    return plane.store.device_count(), plane.store.site_count()


def check_report(rows: list[dict[str, object]], totals: dict[str, int]) -> None:
    assert all(r["status"] in STATUSES for r in rows)
    assert sum(totals.values()) == len(rows)
    assert all(isinstance(r["row"], int) and r["row"] >= 2 for r in rows)


# --- CSV-ish inputs --------------------------------------------------------------------

DEVICE_TOKENS = [
    "mac_address",
    "MAC_ADDRESS",
    "serial_number",
    "endpoint_type",
    "endpoint_name",
    "endpoint_group",
    "reg.1.address",
    "device.auth.localAdminPassword",
    "CONFIG_FILES",
    "FOO",
    "0004f2000001",
    "0004F2000002",
    "00e0db4c20cc",
    "00:04:f2:00:00:03",
    "8218404c20ccf9",
    "Polycom Studio",
    "VVX",
    "G1",
    "G1|G1",
    "Nope",
    "456",
    "Desk-1",
    "Jon Smith",
    "0004f2000001_csv_profile",
]
SITE_TOKENS = [
    "site_name",
    "SITE_NAME",
    "description",
    "location_name",
    "subnets",
    "Internet",
    "Intranet",
    "Branch",
    "New-1",
    '{"public-subnet-list":[',
    '{"ip-address":"20.1.0.0","mask-length":"16"}',
    '{"ip-address":"300.1.1.1","mask-length":33}',
    '"private-subnet-list":[{"ip-address":"10.0.0.0","mask-length":"8"}]',
    "]}",
    "}",
    "[",
    '""',
]
PUNCTUATION = [",", ";", "\t", '"', '""', "\n", "\r\n", "\r", " ", "|", "\ufeff", "\x00", "é"]


def csvish(tokens: list[str]) -> st.SearchStrategy[bytes]:
    """Token soup: real headers and values glued with separators, quotes and line ends."""
    pieces = st.one_of(
        st.sampled_from(tokens),
        st.sampled_from(PUNCTUATION),
        st.text(max_size=6),
    )
    return st.lists(pieces, max_size=60).map(
        lambda parts: "".join(parts).encode("utf-8", "surrogatepass")
    )


def quote(value: str) -> str:
    return '"' + value.replace('"', '""') + '"'


DEVICE_CELLS = {
    "mac_address": ["0004f2000001", "0004F2000002", "0004f2000003", "00e0db4c20cc", "zz", ""],
    "serial_number": ["8218404c20ccf9", "8218404c20ccf8", "ab", ""],
    "endpoint_type": ["", "VVX", "Polycom Studio", "Fax"],
    "endpoint_name": ["", "Desk-1", "Jon Smith"],
    "endpoint_group": ["", "G1", "G1|G1", "Nope"],
}
PARAMETER_HEADERS = ["reg.1.address", "device.auth.localAdminPassword", "a.b", "CONFIG_FILES"]
BAD_HEADERS = ["FOO", "x y", "MAC_ADDRESS", ""]


@st.composite
def device_tables(draw: st.DrawFn) -> bytes:
    """Mostly well-formed device files: plausible cells, some bad, some misplaced."""
    sep = draw(st.sampled_from(SEPARATORS))
    key = draw(st.sampled_from(["mac_address", "serial_number"]))
    others = [h for h in [*DEVICE_CELLS, *PARAMETER_HEADERS] if h != key]
    headers = [key, *draw(st.lists(st.sampled_from(others), unique=True, max_size=5))]
    if draw(st.integers(0, 19)) == 7:
        headers.append(draw(st.sampled_from(BAD_HEADERS)))
    headers = draw(st.permutations(headers))
    cells = {h: st.sampled_from(DEVICE_CELLS[h]) for h in DEVICE_CELLS}
    plain = st.sampled_from(["", "1000", "456", "a,b", 'q"q', "line\nbreak", " pad "])
    lines = [sep.join(headers)]
    for _ in range(draw(st.integers(0, 8))):
        row = [draw(cells.get(h, plain)) for h in headers]
        if draw(st.integers(0, 9)) == 7:
            row.append(draw(plain))
        row_sep = draw(st.sampled_from([sep] * 7 + list(SEPARATORS)))
        lines.append(row_sep.join(quote(c) if draw(st.booleans()) else c for c in row))
    return "\n".join(lines).encode("utf-8")


addresses = st.sampled_from(["20.1.0.0", "10.0.0.0", "20.2.0.0", "300.1.1.1", "", "2001:db8::", 7])
masks = st.sampled_from(["16", 8, "24", "0", "32", "33", "-1", True, None, 1.5])


@st.composite
def subnet_entries(draw: st.DrawFn, private: bool) -> object:
    entry: dict[str, object] = {"ip-address": draw(addresses), "mask-length": draw(masks)}
    if private and draw(st.booleans()):
        entry["private-subnet-list"] = draw(st.lists(subnet_entries(False), max_size=3))
    if draw(st.integers(0, 19)) == 7:
        return draw(st.sampled_from([[], "20.1.0.0/16", None, {"ip-address": "20.1.0.0"}]))
    return entry


subnet_json = st.one_of(
    st.builds(
        lambda items: json.dumps({"public-subnet-list": items}),
        st.lists(subnet_entries(True), max_size=3),
    ),
    st.recursive(
        st.none() | st.booleans() | st.integers(-5, 40) | st.sampled_from(["10.0.0.0", "8"]),
        lambda inner: (
            st.lists(inner, max_size=3)
            | st.dictionaries(
                st.sampled_from(["public-subnet-list", "private-subnet-list", "ip-address"]),
                inner,
                max_size=3,
            )
        ),
        max_leaves=10,
    ).map(json.dumps),
    st.text(max_size=20),
    st.sampled_from(SITE_TOKENS),
)


@st.composite
def site_tables(draw: st.DrawFn) -> bytes:
    """Mostly well-formed site files with random, often broken, subnets JSON."""
    sep = draw(st.sampled_from(SEPARATORS))
    headers = ["site_name", "subnets"]
    headers += draw(st.lists(st.sampled_from(["description", "location_name"]), unique=True))
    headers = draw(st.permutations(headers))
    names = st.sampled_from(["Internet", "Intranet", "Branch", "New-1", "New-2", "", "bad name"])
    lines = [sep.join(headers)]
    for _ in range(draw(st.integers(0, 6))):
        values = {
            "site_name": draw(names),
            "description": draw(st.text(max_size=5)),
            "location_name": draw(st.text(max_size=5)),
            "subnets": draw(subnet_json),
        }
        row_sep = draw(st.sampled_from([sep] * 7 + list(SEPARATORS)))
        lines.append(
            row_sep.join(quote(values[h]) if draw(st.booleans()) else values[h] for h in headers)
        )
    return "\n".join(lines).encode("utf-8", "surrogatepass")


# --- the properties ------------------------------------------------------------------------


def import_devices(plane: ControlPlane, data: bytes, mode: str, separator: str | None) -> None:
    before = counts(plane)
    try:
        report = plane.devices.import_csv(data, mode, "fuzz", separator)
    except RuleError:
        assert counts(plane) == before
        return
    check_report(report.rows, report.totals())


def import_sites(plane: ControlPlane, data: bytes, separator: str | None) -> None:
    before = counts(plane)
    try:
        report = plane.sites.import_csv(data, "fuzz", separator)
    except RuleError:
        assert counts(plane) == before
        return
    check_report(report.rows, report.totals())


def test_device_import_of_arbitrary_bytes_raises_only_rule_errors() -> None:
    with control_plane() as plane:

        @FUZZ
        @given(st.binary(max_size=512), st.sampled_from(UPDATE_MODES), separators)
        def run(data: bytes, mode: str, separator: str | None) -> None:
            import_devices(plane, data, mode, separator)

        run()


def test_device_import_of_csvish_text_raises_only_rule_errors() -> None:
    with control_plane() as plane:

        @FUZZ
        @given(
            st.one_of(csvish(DEVICE_TOKENS), device_tables()),
            st.sampled_from(UPDATE_MODES),
            separators,
        )
        def run(data: bytes, mode: str, separator: str | None) -> None:
            import_devices(plane, data, mode, separator)

        run()


def test_device_import_with_a_bad_mode_raises_a_rule_error_and_changes_nothing() -> None:
    with control_plane() as plane:

        @FUZZ
        @given(st.text(max_size=10).filter(lambda m: m not in UPDATE_MODES), device_tables())
        def run(mode: str, data: bytes) -> None:
            import_devices(plane, data, mode, None)

        run()


def test_site_import_of_arbitrary_bytes_raises_only_rule_errors() -> None:
    with control_plane() as plane:

        @FUZZ
        @given(st.binary(max_size=512), separators)
        def run(data: bytes, separator: str | None) -> None:
            import_sites(plane, data, separator)

        run()


def test_site_import_of_csvish_text_raises_only_rule_errors() -> None:
    with control_plane() as plane:

        @FUZZ
        @given(st.one_of(csvish(SITE_TOKENS), site_tables()), separators)
        def run(data: bytes, separator: str | None) -> None:
            import_sites(plane, data, separator)

        run()


XML_TOKENS = [
    "<polycomConfig>",
    "</polycomConfig>",
    "<PHONE_CONFIG>",
    "</PHONE_CONFIG>",
    "<APPLICATION>",
    '<?xml version="1.0" encoding="UTF-8"?>',
    '<?xml version="1.0" encoding="UTF-16"?>',
    "<!DOCTYPE x>",
    "<reg ",
    'reg.1.address="1000" ',
    'device.auth.localAdminPassword="456" ',
    'FOO="1" ',
    'a="1" a="2" ',
    "/>",
    ">",
    "</reg>",
    "&amp;",
    "&#0;",
    "<![CDATA[x]]>",
    "<!-- c -->",
]


def test_profile_file_import_of_arbitrary_bytes_raises_only_rule_errors() -> None:
    with control_plane() as plane:
        plane.profiles.create({"name": "p"}, "t")

        @FUZZ
        @given(
            st.one_of(
                st.binary(max_size=512),
                st.lists(st.sampled_from(XML_TOKENS) | st.text(max_size=4), max_size=30).map(
                    lambda parts: "".join(parts).encode("utf-8", "surrogatepass")
                ),
            )
        )
        def run(data: bytes) -> None:
            before = plane.store.parameters("p")
            try:
                plane.profiles.import_file("p", data, "t")
            except RuleError:
                assert plane.store.parameters("p") == before

        run()
