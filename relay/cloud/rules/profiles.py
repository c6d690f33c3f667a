"""Profile rules: parameter names, master-file attributes, protected values.

cloud.md "Configuration profiles": master-file attributes may be set in a
profile (`CONFIG_FILES` entries are appended to the generated list,
`APP_FILE_PATH` overrides the software choice, the directory attributes), and
new master attributes must start with `_mac_cfg`. phones.md section 3 gives
the length limits. The factory admin password `456` is refused.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from relay.cloud.rules.errors import RuleError
from relay.cloud.rules.names import check_name
from relay.proto.polycom.cfgfile import is_valid_parameter_name
from relay.proto.polycom.master import (
    DIRECTORY_ATTRIBUTES,
    MasterFileError,
    check_master_attribute,
)

MASTER_ATTRIBUTES = frozenset({"APP_FILE_PATH", "CONFIG_FILES", *DIRECTORY_ATTRIBUTES})
MASTER_PREFIX = "_mac_cfg"
MAX_PARAMETERS = 10_000
MAX_VALUE = 64 * 1024
ADMIN_PASSWORD_PARAMETER = "device.auth.localAdminPassword"  # noqa: S105 (a name)
FACTORY_ADMIN_PASSWORD = "456"  # noqa: S105 (refused, never used)
CSV_PROFILE_SUFFIX = "_csv_profile"
_UPPER_ATTRIBUTE = re.compile(r"[A-Z][A-Z0-9_]*")
_XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def is_master_attribute(name: str) -> bool:
    """Parameters that go into the master file rather than a configuration file."""
    return name in MASTER_ATTRIBUTES or name.startswith(MASTER_PREFIX)


def csv_profile_name(device_id: str) -> str:
    """`<mac>_csv_profile` / `<serial>_csv_profile` (PDMS-E guide, "Auto-Generated ...")."""
    return device_id + CSV_PROFILE_SUFFIX


def check_profile_name(name: str, field: str = "name") -> str:
    """Profile names follow the field-input rule, which also keeps them valid file names."""
    return check_name(name, field, "profile name")


def check_parameter(name: str, value: str, field: str = "parameters") -> None:
    """Refuse a parameter a phone could not take or that breaks a rule of cloud.md."""
    where = f"{field}.{name}" if field else name
    if not is_valid_parameter_name(name):
        raise RuleError(
            "invalid_parameter",
            f"parameter name {name!r} is not valid: use letters, digits, '_', '.', '-', '[', ']', "
            "starting with a letter or '_' (e.g. reg.1.address)",
            where,
        )
    if _UPPER_ATTRIBUTE.fullmatch(name) and name not in MASTER_ATTRIBUTES:
        raise RuleError(
            "unknown_master_attribute",
            f"{name!r} is not a master-file attribute; new master attributes must start with "
            f"{MASTER_PREFIX!r} (known: {', '.join(sorted(MASTER_ATTRIBUTES))})",
            where,
        )
    if len(value.encode("utf-8", "surrogatepass")) > MAX_VALUE:
        raise RuleError("value_too_long", f"value of {name} exceeds {MAX_VALUE} bytes", where)
    if name == "device.set" or (name.startswith("device.") and name.endswith(".set")):
        raise RuleError(
            "set_companion",
            f"{name} is added automatically to every device.* parameter; leave it out",
            where,
        )
    if _XML_ILLEGAL.search(value):
        raise RuleError(
            "invalid_value",
            f"value of {name} contains a control character a phone's XML file cannot carry",
            where,
        )
    if is_master_attribute(name):
        # Measured as the default master file will carry it (phones.md section 3 limits).
        try:
            check_master_attribute(name, value.replace("${mac_address}", "[PHONE_MAC_ADDRESS]"))
        except MasterFileError as exc:
            raise RuleError("invalid_master_attribute", exc.message, where) from exc
    if name == ADMIN_PASSWORD_PARAMETER and value == FACTORY_ADMIN_PASSWORD:
        raise RuleError(
            "factory_password",
            "456 is the factory admin password and cannot be set; choose another",
            where,
        )


def check_parameters(parameters: Mapping[str, str], field: str = "parameters") -> dict[str, str]:
    """Validate a whole parameter set; returns a plain dict copy."""
    if len(parameters) > MAX_PARAMETERS:
        raise RuleError(
            "too_many_parameters", f"a profile holds at most {MAX_PARAMETERS} parameters", field
        )
    out: dict[str, str] = {}
    for name, value in parameters.items():
        if not isinstance(name, str) or not isinstance(value, str):
            raise RuleError(
                "invalid_parameter", "parameter names and values must be strings", field
            )
        check_parameter(name, value, field)
        out[name] = value
    return out
