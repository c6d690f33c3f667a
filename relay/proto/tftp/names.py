"""Which TFTP requests are served at all: read-only, octet mode, provisioning names only.

TFTP has no authentication (RFC 1350 section 1), so the server answers only
the names a phone asks for (relay.proto.polycom.paths) and refuses the rest
before anything is looked up. Pure stdlib (relay.proto rules).

Decisions: a TFTP filename is taken literally (no percent-decoding, no query),
so '%' and '?' are refused rather than given a meaning; a leading '/', a
backslash, a NUL or '..' anywhere is refused as an attempt to step outside the
served names; every refused name is flagged for the audit log (it is a probe
or a misconfigured phone, both worth a WARNING); WRQ is refused with ERROR 2 (the
appliance's TFTP is read-only; phones upload over HTTP or FTP); netascii and
mail modes are refused with ERROR 4 (RFC 1350 section 5 defines mail as
obsolete; netascii is not implemented because it changes sizes and offsets
and phones fetch in octet mode).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from relay.proto.polycom.paths import PathRejected, classify
from relay.proto.tftp.packet import ACCESS_VIOLATION, ILLEGAL_OPERATION, Request

_LITERAL_RE = re.compile(r"[A-Za-z0-9._/\-]+")


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a request is not served: the ERROR to send, the reason to log, and whether to audit."""

    code: int
    message: str
    reason: str
    audit: bool


def screen(request: Request) -> Refusal | None:
    """None when the request may be served (the resolver still decides whether the file exists)."""
    if request.write:
        return Refusal(ACCESS_VIOLATION, "read-only server", "write request", audit=False)
    if request.mode != "octet":
        return Refusal(
            ILLEGAL_OPERATION, "only octet mode is served", f"{request.mode} mode", audit=False
        )
    reason = unsafe_name(request.filename)
    if reason is not None:
        return Refusal(ACCESS_VIOLATION, "access violation", reason, audit=True)
    return None


def unsafe_name(name: str) -> str | None:
    """Why `name` is not a served provisioning name, or None when it is one."""
    if "\0" in name:
        return "the name holds a NUL"
    if "\\" in name:
        return "the name holds a backslash"
    if name.startswith("/"):
        return "the name is an absolute path"
    if ".." in name:
        return "the name holds '..'"
    if _LITERAL_RE.fullmatch(name) is None:
        return "the name holds a character outside letters, digits, '.', '_', '-' and '/'"
    try:
        classify("/" + name)
    except PathRejected as exc:
        return f"not a provisioning name: {exc.message}"
    return None
