"""The relay and monitor services over a real store with an injected clock."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from relay.cloud.controlplane import ControlPlane
from relay.cloud.rules.relays import DEFAULT_LINK, LinkPolicy
from relay.sync.messages import DeviceStatus, Heartbeat, Registration

T0 = 1_800_000_000.0
MAC = "0004f2000001"


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


def _plane(path: Path, clock: Clock, link: LinkPolicy = DEFAULT_LINK) -> ControlPlane:
    plane = ControlPlane(path, clock=clock, link=link)
    plane.bootstrap()
    return plane


def _register(plane: ControlPlane) -> str:
    tenant = plane.tenancy.tenant()["id"]
    pin = plane.relays.pin()["pin"]
    return plane.relays.register(Registration(tenant, pin, "r", "1.0"), "10.0.0.1").relay_id


def test_a_phone_contact_after_an_offline_check_sets_it_online(tmp_path: Path) -> None:
    clock = Clock()
    plane = _plane(tmp_path, clock)
    try:
        plane.devices.seen(MAC, model=None, firmware=None, public_ip=None, private_ip=None)
        relay = _register(plane)
        clock.now += 10
        plane.monitor.record(relay, DeviceStatus(MAC, online=False, checked=clock.now))
        assert plane.devices.get(MAC)["online"] is False
        clock.now += 120
        plane.devices.seen(MAC, model=None, firmware=None, public_ip=None, private_ip=None)
        assert plane.devices.get(MAC)["online"] is True
    finally:
        plane.close()


def test_a_check_dated_in_the_future_counts_as_now(tmp_path: Path) -> None:
    clock = Clock()
    plane = _plane(tmp_path, clock)
    try:
        plane.devices.seen(MAC, model=None, firmware=None, public_ip=None, private_ip=None)
        relay = _register(plane)
        plane.monitor.record(relay, DeviceStatus(MAC, online=False, checked=T0 + 3600))
        clock.now += 70
        plane.devices.seen(MAC, model=None, firmware=None, public_ip=None, private_ip=None)
        assert plane.devices.get(MAC)["online"] is True
    finally:
        plane.close()


def test_link_policy_sets_the_intervals_the_relay_is_told(tmp_path: Path) -> None:
    clock = Clock()
    link = LinkPolicy(heartbeat_seconds=5.0, monitor_seconds=30.0, inactive_after=20.0)
    plane = _plane(tmp_path, clock, link)
    try:
        relay = _register(plane)
        settings = plane.relays.heartbeat(relay, Heartbeat("1.0", (), 1.0), "10.0.0.1")
        assert (settings.heartbeat_seconds, settings.monitor_seconds) == (5.0, 30.0)
        clock.now += 20
        assert plane.relays.listing()[0]["status"] == "inactive"
        assert plane.relays.places(clock.now)[0].active is False
    finally:
        plane.close()


def test_a_data_dir_without_a_pin_gets_one_when_opened(tmp_path: Path) -> None:
    plane = _plane(tmp_path, Clock())
    plane.close()
    with sqlite3.connect(tmp_path / "cloud.db") as db:
        db.execute("DROP TABLE tenant_pin")
    db.close()
    reopened = ControlPlane(tmp_path, clock=Clock())
    try:
        pin = reopened.relays.pin()["pin"]
        assert len(pin) == 8 and pin == reopened.relays.pin()["pin"]
    finally:
        reopened.close()
