"""Device rules that have no REST route of their own (auto-add on first provisioning)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from relay.cloud.controlplane import ControlPlane


@pytest.fixture
def plane(tmp_path: Path) -> Iterator[ControlPlane]:
    plane = ControlPlane(tmp_path / "cloud", clock=lambda: 1_800_000_000.0)
    plane.bootstrap()
    yield plane
    plane.close()


def test_auto_added_device_joins_the_default_groups_in_order(plane: ControlPlane) -> None:
    for name in ("a", "b", "c"):
        plane.groups.create({"name": name}, "t")
    plane.groups.set_default_groups(["c", "a"], "t")
    device = plane.devices.seen(
        "0004F2A1B2C3", model="VVX_500", firmware="5.9.7.4477", public_ip=None, private_ip=None
    )
    assert device["groups"] == ["c", "a"]
    assert device["source"] == "auto"
    assert device["model"] == "VVX500"


def test_auto_added_device_gets_its_site_from_its_addresses(plane: ControlPlane) -> None:
    plane.sites.create({"name": "HQ", "public_subnets": [{"cidr": "198.51.100.0/24"}]}, "t")
    device = plane.devices.seen(
        "0004f2a1b2c3", model=None, firmware=None, public_ip="198.51.100.4", private_ip=None
    )
    assert device["site"] == "HQ"


def test_a_known_device_keeps_its_groups_when_seen_again(plane: ControlPlane) -> None:
    plane.groups.create({"name": "d"}, "t")
    plane.groups.set_default_groups(["d"], "t")
    plane.devices.create({"mac": "0004f2a1b2c3"}, "t")
    device = plane.devices.seen(
        "0004f2a1b2c3", model=None, firmware="6.4.3", public_ip=None, private_ip=None
    )
    assert device["groups"] == []
    assert device["firmware"] == "6.4.3"


def test_second_bootstrap_keeps_the_tenant_and_returns_no_new_token(tmp_path: Path) -> None:
    first = ControlPlane(tmp_path / "cloud")
    token = first.bootstrap()
    tenant = first.tenancy.tenant()["id"]
    first.close()
    second = ControlPlane(tmp_path / "cloud")
    try:
        assert token is not None
        assert second.bootstrap() is None
        assert second.tenancy.tenant()["id"] == tenant
        assert second.tenancy.authenticate(token) is not None
    finally:
        second.close()


def test_admin_edits_of_the_global_container_survive_a_restart(tmp_path: Path) -> None:
    first = ControlPlane(tmp_path / "cloud")
    first.bootstrap()
    first.deployment.set("global", "-", [], "t")
    first.close()
    second = ControlPlane(tmp_path / "cloud")
    try:
        second.bootstrap()
        assert second.deployment.get("global", "-")["profiles"] == []
    finally:
        second.close()


def test_a_new_tenant_has_no_provisioning_account(plane: ControlPlane) -> None:
    assert plane.tenancy.get()["provisioning_account"] == {"user": None, "configured": False}
    assert not plane.provisioning.account_configured()


def test_a_new_tenant_gets_a_random_device_admin_password(tmp_path: Path) -> None:
    passwords = []
    for name in ("a", "b"):
        plane = ControlPlane(tmp_path / name)
        plane.bootstrap()
        passwords.append(plane.tenancy.device_admin_password())
        plane.close()
    assert all(len(p) == 20 and p.isalnum() for p in passwords)
    assert passwords[0] != passwords[1]
    assert "456" not in passwords and "789" not in passwords
