"""Rules for the files the control plane keeps (cloud.md "Resource and device files").

Resource files: `.ld .wav .cfg .csv .png .jpg .xml .zip .tar .txt .log .bak .htm
.html .mp3`, below 50 MB. Device files: a global `000000000000-<name>` or a
`<mac>-<name>` for one device (that one wins), types CFG, XML, CSV, PEM, CRT,
CER, in one of the named directories. Phone uploads: logs (10 MB per PUT, kept
10 days) and override files (phones.md section 2).
"""

from __future__ import annotations

import datetime as dt
import re

from relay.cloud.rules.errors import RuleError

RESOURCE_TYPES = frozenset(
    {
        ".ld",
        ".wav",
        ".cfg",
        ".csv",
        ".png",
        ".jpg",
        ".xml",
        ".zip",
        ".tar",
        ".txt",
        ".log",
        ".bak",
        ".htm",
        ".html",
        ".mp3",
    }
)
MAX_RESOURCE_BYTES = 50 * 1024 * 1024 - 1  # "below 50 MB"
DEVICE_FILE_TYPES = frozenset({".cfg", ".xml", ".csv", ".pem", ".crt", ".cer"})
DEVICE_FILE_DIRECTORIES = (
    "misc",
    "contacts",
    "overrides",
    "license",
    "userprofiles",
    "certificates",
    "flk",
)
MAX_DEVICE_FILE_BYTES = 10 * 1024 * 1024
MAX_LOG_PUT_BYTES = 10 * 1024 * 1024
MAX_LOG_DAY_BYTES = 50 * 1024 * 1024
MAX_OVERRIDE_BYTES = 2 * 1024 * 1024
LOG_KEEP_DAYS = 10
GLOBAL_PREFIX = "000000000000-"
# Names the service generates or only the phone writes; `-directory.xml` is both a
# contact directory an administrator provides and one the phone may upload.
RESERVED_SUFFIXES = (
    "-profile.cfg",
    "-boot.log",
    "-app.log",
    "-phone.cfg",
    "-web.cfg",
    "-system.cfg",
    "-calls.xml",
)
_FILE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._\-]{0,254}")
_DEVICE_NAME = re.compile(r"([0-9a-f]{12})-([A-Za-z0-9][A-Za-z0-9._\-]{0,200})")
_LOOKS_DEVICE = re.compile(r"[0-9A-Fa-f]{12}[-.].*")


def _extension(name: str) -> str:
    dot = name.rfind(".")
    return name[dot:].lower() if dot > 0 else ""


def check_resource_name(name: str, size: int) -> str:
    if not _FILE_NAME.fullmatch(name) or ".." in name:
        raise RuleError(
            "invalid_file_name",
            f"{name!r} is not a file name: use letters, digits, '.', '_' and '-'",
            "name",
        )
    if _LOOKS_DEVICE.fullmatch(name):
        raise RuleError(
            "invalid_file_name",
            f"{name!r} looks like a device file (12 hex digits first); upload it as a device file",
            "name",
        )
    if _extension(name) not in RESOURCE_TYPES:
        raise RuleError(
            "invalid_file_type",
            f"resource files must be one of {', '.join(sorted(RESOURCE_TYPES))}",
            "name",
        )
    if size > MAX_RESOURCE_BYTES:
        raise RuleError("too_large", "resource files must be below 50 MB", "body", status=413)
    return name


def check_device_file(name: str, directory: str, size: int) -> tuple[str | None, str]:
    """Validate a device file; returns (device MAC or None for a global file, name)."""
    lowered = name[:12].lower() + name[12:]
    match = _DEVICE_NAME.fullmatch(lowered)
    if match is None or ".." in name:
        raise RuleError(
            "invalid_file_name",
            f"{name!r} must be 000000000000-<name> (every phone) or <mac>-<name> (one phone)",
            "name",
        )
    if any(lowered.endswith(s) for s in RESERVED_SUFFIXES):
        raise RuleError(
            "reserved_name",
            f"{name!r} is a name the phone or the service writes; choose another",
            "name",
        )
    if _extension(name) not in DEVICE_FILE_TYPES:
        raise RuleError(
            "invalid_file_type",
            f"device files must be one of {', '.join(sorted(DEVICE_FILE_TYPES))}",
            "name",
        )
    if directory and directory not in DEVICE_FILE_DIRECTORIES:
        raise RuleError(
            "invalid_directory",
            f"directory must be one of {', '.join(DEVICE_FILE_DIRECTORIES)} (or empty)",
            "directory",
        )
    if size > MAX_DEVICE_FILE_BYTES:
        raise RuleError("too_large", "device files are limited to 10 MB", "body", status=413)
    mac = match.group(1)
    return (None if mac == "000000000000" else mac), lowered


def log_day(now: float) -> str:
    return dt.datetime.fromtimestamp(now, dt.UTC).date().isoformat()


def expired_log_days(days: list[str], now: float) -> list[str]:
    """Dates (YYYY-MM-DD) older than the 10 days logs are kept."""
    today = dt.datetime.fromtimestamp(now, dt.UTC).date()
    oldest = (today - dt.timedelta(days=LOG_KEEP_DAYS - 1)).isoformat()
    return [d for d in days if d < oldest]
