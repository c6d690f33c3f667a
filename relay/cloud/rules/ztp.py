"""Zero-touch (ZTP) redirect rules: the partner API's MACs and profiles, and the
directory a relay syncs (phones.md section 1 item 5; docs/agent-link.md "ZTP directory").

A phone that got no boot server from DHCP nor DHCPINFORM asks the redirect
service, by MAC, for its provisioning server; the service maps MAC -> profile
-> provisioning URL, user and password. Every refusal here is a `RuleError`
with status 400 (the partner API's "bad MAC" answer, and the same for a bad
profile), and every input is capped before it is looked at. Pure: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from relay.cloud.rules.errors import RuleError

MAX_PROFILE_NAME = 64
# Phones keep the provisioning server (device.prov.serverName) in at most 255 characters.
MAX_URL = 255
MAX_USER = 64
MAX_PASSWORD = 64
# Per tenant: 20,000 devices keep the synced directory near 9 MB, under the agent's
# 16 MiB answer cap even with every field at its longest.
MAX_DEVICES = 20_000
MAX_PROFILES = 1_000
MAX_MAC_TEXT = 17  # 00:04:f2:a1:b2:c3
MAX_ETAG_HEADER = 1024
SCHEMES = ("http", "https", "ftp", "ftps", "tftp")
PROFILE_FIELDS = frozenset({"name", "url", "user", "password"})

_MAC = re.compile(r"[0-9a-f]{12}|[0-9a-f]{2}([:-])[0-9a-f]{2}(?:\1[0-9a-f]{2}){4}")
_URL_CHARS = re.compile(r"[\x21-\x7e]+")
_CREDENTIAL_CHARS = re.compile(r"[\x20-\x7e]*")


def _bad(code: str, message: str, field: str | None) -> RuleError:
    return RuleError(code, message, field, status=400)


def parse_mac(value: object, field: str = "mac") -> str:
    """12 hex digits, bare or in six pairs split by one kind of `:` or `-`; lower case.

    The partner API answers 400 to anything else (phones.md section 1 item 5)."""
    if isinstance(value, str) and len(value) <= MAX_MAC_TEXT:
        text = value.lower()
        if _MAC.fullmatch(text):
            return text.replace(":", "").replace("-", "")
    shown = repr(value[: MAX_MAC_TEXT + 3]) if isinstance(value, str) else "that"
    raise _bad(
        "invalid_mac",
        f"MAC address {shown} is not 12 hexadecimal digits like 0004f23ea4e1 "
        "(00:04:f2:3e:a4:e1 and 00-04-f2-3e-a4-e1 are accepted too)",
        field,
    )


def check_url(value: object, field: str = "url") -> str:
    """An http, https, ftp, ftps or tftp URL with a host, as option 160/161 carries it.

    Phones refuse URLs with spaces or backslashes (phones.md section 2); the account
    goes in `user` and `password`, not in the URL, so URLs can be shown and logged."""
    if not isinstance(value, str) or not value:
        raise _bad("invalid_url", "url is required: the provisioning server's URL", field)
    if len(value) > MAX_URL:
        raise _bad("invalid_url", f"url is longer than {MAX_URL} characters", field)
    if not _URL_CHARS.fullmatch(value) or "\\" in value:
        raise _bad(
            "invalid_url",
            "url may contain no spaces, backslashes, control or non-ASCII characters "
            "(phones refuse them)",
            field,
        )
    try:
        parts = urlsplit(value)
        host, _ = parts.hostname, parts.port
    except ValueError as exc:
        raise _bad("invalid_url", f"url is not a valid URL: {exc}", field) from exc
    if parts.scheme not in SCHEMES or not host:
        raise _bad(
            "invalid_url",
            f"url must be {', '.join(SCHEMES)}://host[:port][/path], like "
            "https://prov.example.com/phones",
            field,
        )
    if "@" in parts.netloc:
        raise _bad("invalid_url", "put the account in user and password, not in the url", field)
    return value


def _optional_text(value: object, field: str, limit: int) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise _bad("invalid_type", f"{field} must be a string", field)
    if len(value) > limit:
        raise _bad(f"invalid_{field}", f"{field} is longer than {limit} characters", field)
    if not _CREDENTIAL_CHARS.fullmatch(value):
        raise _bad(
            f"invalid_{field}",
            f"{field} may contain printable ASCII characters only (as phones store it)",
            field,
        )
    return value


def check_user(value: object, field: str = "user") -> str:
    """Optional; no `:`, which would end the user in HTTP Basic (RFC 7617 section 2)."""
    user = _optional_text(value, field, MAX_USER)
    if ":" in user:
        raise _bad("invalid_user", "user may not contain ':'", field)
    return user


def check_password(value: object, field: str = "password") -> str:
    return _optional_text(value, field, MAX_PASSWORD)


@dataclass(frozen=True, slots=True)
class ZtpProfile:
    """Where the phones of a profile are sent, and with which account."""

    name: str
    url: str
    user: str = ""
    password: str = field(default="", repr=False)


def parse_profile(body: object) -> ZtpProfile:
    """A partner API profile body `{"name", "url", "user"?, "password"?}`."""
    if not isinstance(body, Mapping):
        raise _bad("invalid_json", "body must be an object {name, url, user, password}", "body")
    unknown = sorted(str(k)[:40] for k in body if k not in PROFILE_FIELDS)
    if unknown:
        raise _bad(
            "unknown_field",
            f"unknown field(s) {', '.join(unknown[:5])}; a profile has name, url, "
            "user and password",
            unknown[0],
        )
    name = body.get("name")
    if not isinstance(name, str) or not name.strip():
        raise _bad("name_required", "name is required", "name")
    if len(name) > MAX_PROFILE_NAME:
        raise _bad("name_too_long", f"name is longer than {MAX_PROFILE_NAME} characters", "name")
    if not name.isprintable() or name != name.strip():
        raise _bad(
            "invalid_name",
            "name may contain no control characters nor leading or trailing spaces",
            "name",
        )
    user = check_user(body.get("user"))
    password = check_password(body.get("password"))
    if password and not user:
        raise _bad("invalid_user", "a password needs a user", "user")
    return ZtpProfile(name, check_url(body.get("url")), user, password)


def parse_assignment(body: object) -> tuple[str, str]:
    """A partner API device body `{"id": "<mac>", "profile": "<profile id>"}`."""
    if not isinstance(body, Mapping):
        raise _bad("invalid_json", "body must be an object {id, profile}", "body")
    mac = parse_mac(body.get("id"), "id")
    profile = body.get("profile")
    if not isinstance(profile, str) or not 0 < len(profile) <= MAX_PROFILE_NAME:
        raise _bad("invalid_profile", "profile must be the id of a profile", "profile")
    return mac, profile


# -- the directory a relay syncs ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ZtpAnswer:
    """What the redirect service tells one phone."""

    mac: str
    url: str
    user: str = ""
    password: str = field(default="", repr=False)

    def to_wire(self) -> dict[str, str]:
        return {"url": self.url, "user": self.user, "password": self.password}


@dataclass(frozen=True, slots=True)
class ZtpDirectoryData:
    """A tenant's whole MAC -> answer map at one `version` (it grows with every change)."""

    version: int
    devices: Mapping[str, ZtpAnswer]

    def to_wire(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "devices": {mac: a.to_wire() for mac, a in sorted(self.devices.items())},
        }


def parse_directory(value: object) -> ZtpDirectoryData:
    """`{"version": N, "devices": {"<mac>": {"url", "user", "password"}}}` from the cloud or
    the relay's saved copy, checked by the same rules the cloud applied."""
    if not isinstance(value, Mapping):
        raise _bad("invalid_directory", "the ZTP directory must be an object", "body")
    version, devices = value.get("version"), value.get("devices")
    if isinstance(version, bool) or not isinstance(version, int) or version < 0:
        raise _bad("invalid_directory", "version must be a whole number", "version")
    if not isinstance(devices, Mapping):
        raise _bad("invalid_directory", "devices must be an object keyed by MAC", "devices")
    if len(devices) > MAX_DEVICES:
        raise _bad("invalid_directory", f"more than {MAX_DEVICES} devices", "devices")
    out: dict[str, ZtpAnswer] = {}
    # Devices share a few profiles: each distinct account is checked once (20,000 devices
    # took half a second when every URL was parsed again).
    checked: dict[tuple[object, ...], tuple[str, str, str]] = {}
    for key, entry in devices.items():
        mac = parse_mac(key, "devices")
        if not isinstance(entry, Mapping):
            raise _bad("invalid_directory", f"devices.{mac} must be an object", "devices")
        given = (entry.get("url"), entry.get("user"), entry.get("password"))
        account = checked.get(given) if all(isinstance(v, str | None) for v in given) else None
        if account is None:
            account = (
                check_url(given[0], "devices.url"),
                check_user(given[1], "devices.user"),
                check_password(given[2], "devices.password"),
            )
            checked[given] = account
        out[mac] = ZtpAnswer(mac, *account)
    return ZtpDirectoryData(version, out)


def etag_of(tenant_id: str, version: int) -> str:
    """A strong ETag (RFC 9110 section 8.8.3); the tenant in it keeps a rebuilt cloud's
    version 1 from matching an old copy's version 1."""
    return f'"{tenant_id}-{version}"'


def none_match(header: str | None, etag: str) -> bool:
    """True when If-None-Match names `etag` or is `*` (RFC 9110 section 13.1.2): the
    answer is 304. Weak comparison, as the RFC asks for If-None-Match."""
    if not header or len(header) > MAX_ETAG_HEADER:
        return False
    tags = [t.strip().removeprefix("W/") for t in header.split(",")]
    return "*" in tags or etag.removeprefix("W/") in tags
