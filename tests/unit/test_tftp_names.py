"""The TFTP request screen: read-only, octet only, provisioning names only, escapes audited."""

from __future__ import annotations

import pytest

from relay.proto.tftp.names import Refusal, screen, unsafe_name
from relay.proto.tftp.packet import ACCESS_VIOLATION, ILLEGAL_OPERATION, Request


def rrq(name: str, mode: str = "octet") -> Request:
    return Request(False, name, mode)


@pytest.mark.parametrize(
    "name",
    [
        "0004f2a1b2c3.cfg",
        "000000000000.cfg",
        "0004F2A1B2C3-phone.cfg",
        "3111-44500-001.sip.ld",
        "sip.ld",
        "contacts/0004f2a1b2c3-directory.xml",
        "images/0123abcd/sip.ld",
    ],
)
def test_provisioning_names_are_served(name: str) -> None:
    assert screen(rrq(name)) is None


@pytest.mark.parametrize(
    "name",
    [
        "../etc/passwd",
        "a/../../b",
        "/etc/passwd",
        "..\\windows",
        "sub\\file.cfg",
        "with\0nul",
        "name..cfg",
    ],
)
def test_escaping_names_are_access_violations_and_audited(name: str) -> None:
    refusal = screen(rrq(name))

    assert refusal is not None
    assert (refusal.code, refusal.audit) == (ACCESS_VIOLATION, True)


@pytest.mark.parametrize(
    "name", ["etc/passwd", "a%2e%2e", "0004f2a1b2c3.cfg?x", "name with space", "-rf"]
)
def test_names_outside_the_served_set_are_refused(name: str) -> None:
    assert unsafe_name(name) is not None


def test_a_write_request_is_refused_read_only_without_audit() -> None:
    refusal = screen(Request(True, "0004f2a1b2c3-boot.log", "octet"))

    assert refusal == Refusal(ACCESS_VIOLATION, "read-only server", "write request", audit=False)


@pytest.mark.parametrize("mode", ["netascii", "mail"])
def test_modes_other_than_octet_are_illegal_operations(mode: str) -> None:
    refusal = screen(rrq("sip.ld", mode))

    assert refusal is not None
    assert (refusal.code, refusal.audit) == (ILLEGAL_OPERATION, False)
