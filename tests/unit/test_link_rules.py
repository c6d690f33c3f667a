"""Relay and download agent status, and the device online rule (cloud.md "Tenant,
relays and PIN", "Device monitor")."""

from __future__ import annotations

from relay.cloud.rules.monitor import CONTACT_WINDOW, is_online, tally
from relay.cloud.rules.relays import LinkPolicy, agent_status, download_agent_status

POLICY = LinkPolicy()
T0 = 1_800_000_000.0


def test_an_agent_is_active_for_ten_minutes_after_a_heartbeat() -> None:
    assert agent_status(T0, T0 + 599, POLICY) == "active"
    assert agent_status(T0, T0 + 600, POLICY) == "inactive"


def test_an_agent_that_never_heartbeat_is_inactive() -> None:
    assert agent_status(None, T0, POLICY) == "inactive"


def test_the_download_agent_is_active_only_after_a_running_heartbeat() -> None:
    assert download_agent_status(T0, "stopped", T0 + 599, POLICY) == "active"
    assert download_agent_status(T0, "running", T0 + 600, POLICY) == "inactive"


def test_a_download_agent_never_running_is_absent_or_inactive_if_installed() -> None:
    assert download_agent_status(None, "absent", T0, POLICY) == "absent"
    assert download_agent_status(None, "stopped", T0, POLICY) == "inactive"


def test_a_device_never_heard_from_nor_checked_is_offline() -> None:
    assert not is_online(T0, None, None, None)


def test_a_contact_newer_than_the_last_check_makes_a_device_online() -> None:
    assert is_online(T0, T0 - 10, T0 - 20, False)


def test_a_check_newer_than_the_last_contact_says_what_it_found() -> None:
    assert not is_online(T0, T0 - 20, T0 - 10, False)
    assert is_online(T0, None, T0 - CONTACT_WINDOW * 10, True)


def test_an_old_contact_without_a_newer_check_is_offline() -> None:
    assert not is_online(T0, T0 - CONTACT_WINDOW, None, None)


def test_tally_counts_online_and_total_per_name() -> None:
    assert tally([("b", True), ("a", False), ("b", False)]) == {
        "a": {"online": 0, "total": 1},
        "b": {"online": 1, "total": 2},
    }
