"""Identifier and name rules (cloud.md "Devices and device groups", "Tenant").

PDMS-E guide, "Field Input Requirements": device, group, profile, site and
provisioning-account names take ASCII letters, digits and `# . - _ ( ) [ ]`
only. Profile file names may not contain `/ \\ : * ? " < > |`.
"""

from __future__ import annotations

import re

from relay.cloud.rules.errors import RuleError

MAX_NAME = 128
_NAME = re.compile(r"[A-Za-z0-9#.\-_()\[\]]+")
_MAC = re.compile(r"[0-9a-f]{12}")
_SERIAL = re.compile(r"[a-z0-9]{4,64}")
_HOSTNAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,29}[a-z0-9]")
_RESERVED_HOST = re.compile(r"t[0-9]+.*|www|(ops|service|console).*")

PHONE_TYPES = (
    "VVX",
    "SoundStation",
    "SoundPoint",
    "SoundStructure VoIP Interface",
    "Polycom Trio",
    "CX",
)
NON_PHONE_TYPES = ("Polycom Studio",)
ENDPOINT_TYPES = PHONE_TYPES + NON_PHONE_TYPES


def check_name(value: str, field: str, what: str = "name") -> str:
    """Return the name if it follows the field-input rule, else raise."""
    if not value:
        raise RuleError("name_required", f"{what} is required", field)
    if len(value) > MAX_NAME:
        raise RuleError("name_too_long", f"{what} is longer than {MAX_NAME} characters", field)
    if not _NAME.fullmatch(value):
        bad = sorted({c for c in value if not _NAME.fullmatch(c)})
        shown = " ".join(repr(c) for c in bad)
        raise RuleError(
            "invalid_name",
            f"{what} {value!r} contains {shown}; "
            "use only ASCII letters, digits and # . - _ ( ) [ ]",
            field,
        )
    return value


def normalize_mac(value: str, field: str = "mac_address") -> str:
    """A MAC is 12 hex digits without separators (PDMS-E CSV rule); stored lower case."""
    mac = value.strip().lower()
    if not _MAC.fullmatch(mac):
        hint = " (write it without ':' or '-')" if any(c in mac for c in ":-.") else ""
        raise RuleError(
            "invalid_mac",
            f"MAC address {value!r} is not 12 hexadecimal digits like 0004f23ea4e1{hint}",
            field,
        )
    return mac


def check_serial(value: str, field: str = "serial_number") -> str:
    """Serial numbers (video bars) are letters and digits, like 8218404c20ccf9; stored lower
    case, like MACs, so that a device is found whatever case a user types."""
    serial = value.strip().lower()
    if not _SERIAL.fullmatch(serial):
        raise RuleError(
            "invalid_serial",
            f"serial number {value!r} must be 4-64 letters and digits, like 8218404c20ccf9",
            field,
        )
    return serial


def check_endpoint_type(value: str, field: str = "endpoint_type") -> str:
    """Return the canonical spelling of an endpoint type (matched case-insensitively)."""
    for known in ENDPOINT_TYPES:
        if known.lower() == value.strip().lower():
            return known
    raise RuleError(
        "invalid_endpoint_type",
        f"endpoint type {value!r} is not one of: {', '.join(ENDPOINT_TYPES)}",
        field,
    )


def is_phone_type(endpoint_type: str | None) -> bool:
    """Phones are identified by MAC; other devices by serial number."""
    return endpoint_type not in NON_PHONE_TYPES


def check_hostname(value: str, field: str = "hostname") -> str:
    """Tenant provisioning host name (PDMS-E guide, "Host Name Rules")."""
    if not _HOSTNAME.fullmatch(value):
        raise RuleError(
            "invalid_hostname",
            f"host name {value!r} must be 2-31 lowercase letters, digits, '_' or '-', "
            "starting and ending with a letter or digit",
            field,
        )
    if _RESERVED_HOST.fullmatch(value):
        raise RuleError(
            "reserved_hostname",
            f"host name {value!r} is reserved (t<digits>..., www, ops..., service..., console...)",
            field,
        )
    return value


def normalize_model(value: str, field: str = "model") -> str:
    """Device models are keyed without spaces or underscores: 'VVX 500' -> 'VVX500'."""
    model = re.sub(r"[\s_]", "", value)
    if not model or not _NAME.fullmatch(model) or len(model) > 64:
        raise RuleError("invalid_model", f"device model {value!r} is not a model name", field)
    return model
