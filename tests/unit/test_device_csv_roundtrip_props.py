"""Device CSV export -> import round-trips (cloud.md "Devices and device groups": "Export
writes the same format back ... so export -> edit -> import round-trips").

Random devices go into one control plane through `devices.import_csv`; its export, in
each separator, imported into a fresh control plane with the same groups, exports the
identical text.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from relay.cloud.controlplane import ControlPlane
from relay.cloud.rules.devices_csv import FIXED_HEADERS
from relay.proto.csv.table import SEPARATORS, write_table

GROUPS = ("G1", "Sales(EU)", "x.y", "[lab]", "#7", "a-b_c")
NAME_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789#.-_()[]"
PHONE_TYPES = ("", "VVX", "SoundStation", "SoundPoint", "SoundStructure VoIP Interface", "CX")

macs = st.from_regex(r"[0-9a-f]{12}", fullmatch=True)
serials = st.from_regex(r"[0-9a-z]{14}", fullmatch=True)
names = st.text(alphabet=NAME_ALPHABET, max_size=24)
# Characters a phone's XML configuration file cannot carry are refused at import.
XML_ILLEGAL = "".join(chr(c) for c in range(32) if chr(c) not in "\t\n\r") + "\ufffe\uffff"
# Parameter names a phone takes: no all-capitals names (those are master-file attributes)
# and none that reads as one of the fixed columns.
parameter_names = st.from_regex(r"[a-z_][A-Za-z0-9_.\-]{0,15}", fullmatch=True).filter(
    lambda n: n.casefold() not in FIXED_HEADERS
)
awkward = st.sampled_from([",", ";", "\t", '"', '""', "\n", "\r\n", "\r", " ", "|", "'", "\ufeff"])
values = st.lists(
    st.one_of(awkward, st.characters(codec="utf-8", exclude_characters=XML_ILLEGAL)), max_size=12
).map("".join)


@dataclass(frozen=True)
class Device:
    mac: str | None
    serial: str | None
    type: str
    name: str
    groups: tuple[str, ...]
    parameters: dict[str, str]

    @property
    def key(self) -> str:
        return self.serial or self.mac or ""


@st.composite
def fleets(draw: st.DrawFn) -> tuple[list[str], list[Device]]:
    """Parameter columns and devices with distinct MACs and serials."""
    columns = draw(st.lists(parameter_names, max_size=6, unique_by=str.casefold))
    count = draw(st.integers(1, 6))
    mac_pool = draw(st.lists(macs, min_size=count, max_size=count, unique=True))
    devices = []
    for mac in mac_pool:
        studio = draw(st.booleans()) and draw(st.booleans())
        params = {c: v for c in columns if (v := draw(values))}
        groups = tuple(draw(st.lists(st.sampled_from(GROUPS), unique=True, max_size=4)))
        if studio:
            serial = draw(serials)
            devices.append(
                Device(
                    mac if draw(st.booleans()) else None,
                    serial,
                    "Polycom Studio",
                    draw(names),
                    groups,
                    params,
                )
            )
        else:
            devices.append(
                Device(mac, None, draw(st.sampled_from(PHONE_TYPES)), draw(names), groups, params)
            )
    serials_seen = [d.serial for d in devices if d.serial]
    if len(set(serials_seen)) != len(serials_seen):
        devices = [d for d in devices if not d.serial]
    return columns, devices


@st.composite
def import_files(draw: st.DrawFn) -> tuple[bytes, list[Device]]:
    """A valid import file in random column order, header case and separator."""
    columns, devices = draw(fleets())
    headers = [draw(st.sampled_from([h, h.upper(), h.title()])) for h in FIXED_HEADERS]
    order = draw(st.permutations(range(len(headers) + len(columns))))
    all_headers = [*headers, *columns]
    rows = []
    for d in devices:
        fixed = [
            draw(st.sampled_from([d.mac, d.mac.upper()])) if d.mac else "",
            d.serial or "",
            d.type,
            d.name,
            "|".join(d.groups),
        ]
        cells = [*fixed, *(d.parameters.get(c, "") for c in columns)]
        rows.append([cells[i] for i in order])
    separator = draw(st.sampled_from(SEPARATORS))
    text = write_table([all_headers[i] for i in order], rows, separator)
    return text.encode("utf-8"), devices


@contextmanager
def control_plane() -> Iterator[ControlPlane]:
    """A bootstrapped control plane with GROUPS, in its own directory, closed after."""
    with tempfile.TemporaryDirectory() as tmp:
        plane = ControlPlane(Path(tmp) / "data")
        try:
            plane.bootstrap()
            for group in GROUPS:
                plane.groups.create({"name": group}, "test")
            yield plane
        finally:
            plane.close()


@settings(max_examples=50, deadline=None)
@given(import_files())
def test_export_imported_into_a_fresh_plane_exports_identically(
    case: tuple[bytes, list[Device]],
) -> None:
    data, devices = case
    with control_plane() as source:
        report = source.devices.import_csv(data, "skip", "test").as_dict()
        assert report["errors"] == 0, report
        assert report["created"] == len(devices)
        expected = {d.key: d.parameters for d in devices if d.parameters}
        assert source.store.csv_profiles() == expected
        for device in devices:
            stored = source.devices.get(device.key)
            assert (stored["name"], tuple(stored["groups"])) == (device.name, device.groups)
        for separator in SEPARATORS:
            exported = source.devices.export_csv(separator)
            with control_plane() as fresh:
                again = fresh.devices.import_csv(exported.encode("utf-8"), "skip", "test")
                assert again.totals() == {
                    "created": len(devices),
                    "updated": 0,
                    "skipped": 0,
                    "errors": 0,
                }, again.rows
                assert fresh.devices.export_csv(separator) == exported
