"""What an FTP command from a phone names, and whether the phone may write it.

FTP names arrive as the literal argument of RETR, STOR, APPE, SIZE, MDTM and
CWD (RFC 959 section 4.1.3), relative to the working directory or absolute.
The relay serves no real tree: its root holds the provisioning names of
phones.md section 2 and the directories of relay.proto.polycom.paths. A name
is joined to the working directory and screened by `classify` exactly like an
HTTP request path, so `..`, absolute escapes and anything outside the
provisioning names are refused with the one `PathRejected` before the cloud
is asked. Pure: no sockets, no clock.

Decisions: FTP names are literal, so '%' and '?' (which `classify` would
decode or cut off) are refused, as no provisioning name holds them; the
working directory is the root or one served directory (CWD anywhere else is
refused, CDUP returns to the root); phones write only kind "upload" names
(their logs and override files, phones.md section 2), with the cloud's size
limits; APPE is for logs only, because the cloud appends every log upload to
the day's file (relay.cloud.files.append_log) while an override file is only
ever replaced.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC
from email.utils import parsedate_to_datetime

from relay.cloud.rules.files import MAX_LOG_PUT_BYTES, MAX_OVERRIDE_BYTES
from relay.proto.polycom.paths import (
    DIRECTORIES,
    LOG_SUFFIXES,
    MAX_PATH,
    PathRejected,
    ProvPath,
    classify,
)

ROOT = "/"
# Longer than any HTTP date (RFC 9110 section 5.6.7); a longer header is not one.
MAX_HTTP_DATE = 64
TIME_VAL = "%Y%m%d%H%M%S"


@dataclass(frozen=True, slots=True)
class Target:
    """A name a command may act on: the rooted request path and what it names."""

    path: str
    names: ProvPath


@dataclass(frozen=True, slots=True)
class Upload:
    """A write a phone may make, and how many bytes the cloud accepts for it."""

    limit: int
    log: bool


class WriteRefused(Exception):
    """A STOR or APPE of a name phones do not write; `reason` goes to the audit line."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def resolve(cwd: str, argument: str) -> Target:
    """The file `argument` names from working directory `cwd`, or PathRejected."""
    if len(argument) > MAX_PATH:
        raise PathRejected(f"the name is over {MAX_PATH} characters")
    for literal in ("%", "?"):
        if literal in argument:
            raise PathRejected(f"FTP names are literal and no provisioning name holds {literal!r}")
    path = argument if argument.startswith(ROOT) else _join(cwd, argument)
    return Target(path, classify(path))


def change_directory(cwd: str, argument: str) -> str:
    """The working directory after `CWD argument`: the root or one served directory."""
    if argument in ("", ROOT):
        return ROOT
    if len(argument) > MAX_PATH:
        raise PathRejected(f"the name is over {MAX_PATH} characters")
    path = argument if argument.startswith(ROOT) else _join(cwd, argument)
    if path.endswith("/"):
        path = path[:-1]
    segments = path[1:].split("/")
    if ".." in segments or "." in segments:
        raise PathRejected("the directory has a '.' or '..' segment")
    if len(segments) == 1 and segments[0].lower() in DIRECTORIES:
        return ROOT + segments[0].lower()
    raise PathRejected(
        f"not a served directory; the directories are {', '.join(sorted(DIRECTORIES))}"
    )


def upload(names: ProvPath, append: bool) -> Upload:
    """What a STOR (or, with `append`, APPE) of `names` may send, or WriteRefused."""
    if names.kind != "upload" or names.mac is None:
        raise WriteRefused(
            f"a {names.kind.replace('_', ' ')} is not written by phones; they write only "
            "<mac>-boot.log, <mac>-app.log and their override files"
        )
    is_log = names.name.endswith(LOG_SUFFIXES)
    if append and not is_log:
        raise WriteRefused("APPE appends to logs only; override files are replaced with STOR")
    return Upload(MAX_LOG_PUT_BYTES if is_log else MAX_OVERRIDE_BYTES, is_log)


def failure_reply(status: int) -> str:
    """The FTP reply (RFC 959 section 4.2) for a cloud answer that is not a success."""
    if status == 404:
        return "550 No such file."
    if status == 401:
        return "530 Not logged in: the provisioning account was refused."
    if status == 403:
        return "550 Permission denied."
    if status == 413:
        return "552 Exceeded storage allocation."
    if status == 416:
        return "554 The restart position is past the end of the file."
    if status == 429 or status >= 500:
        return "451 The provisioning service cannot answer now; try again later."
    return f"550 Refused by the provisioning service (HTTP {status})."


def modification_time(http_date: str) -> str | None:
    """MDTM's `YYYYMMDDHHMMSS` (UTC, RFC 3659 section 2.3) of an HTTP date, or None."""
    if len(http_date) > MAX_HTTP_DATE:
        return None
    try:
        moment = parsedate_to_datetime(http_date)
        if moment.tzinfo is None:
            return None
        moment = moment.astimezone(UTC)
    except (TypeError, ValueError, OverflowError):
        return None
    # A time-val has exactly four year digits.
    return moment.strftime(TIME_VAL) if moment.year >= 1000 else None


def ftp_time(seconds: float) -> str:
    """RFC 3659 section 2.3 time-val of a POSIX time, in UTC."""
    return time.strftime(TIME_VAL, time.gmtime(seconds))


def _join(cwd: str, argument: str) -> str:
    return cwd + argument if cwd == ROOT else f"{cwd}/{argument}"
