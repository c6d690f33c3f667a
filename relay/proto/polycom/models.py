"""Polycom/Poly phone models: part numbers, MAC OUIs, firmware file names (phones.md).

The part number matters because the phone prefixes it to the APP_FILE_PATH
it was given (phones.md section 3: `3111-44500-001.sip.ld`), so the relay
must serve firmware under that name; the OUIs are how phones are recognised
on the network (phones.md section 1). Pure stdlib.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from types import MappingProxyType

# Model (master-file spelling, as UserAgent.model) -> part number; phones.md
# section 3 gives this sample, more models can be added as they are seen.
PART_NUMBERS: Mapping[str, str] = MappingProxyType(
    {
        "VVX300": "3111-46135-002",
        "VVX310": "3111-46161-001",
        "VVX400": "3111-46157-002",
        "VVX410": "3111-46162-001",
        "VVX500": "3111-44500-001",
        "VVX600": "3111-44600-001",
        "VVX101": "3111-40250-001",
        "VVX201": "3111-40450-001",
        "VVX150": "3111-48810-001",
        "VVX250": "3111-48820-001",
        "VVX350": "3111-48830-001",
        "VVX450": "3111-48840-001",
        "VVX1500": "2345-17960-001",
        "SPIP650": "2345-12600-001",
        "SSIP7000": "3111-40000-001",
    }
)

# phones.md section 1: `00:04:f2` and `64:16:7f`, as the first 6 of 12 lower-case hex digits.
OUIS = ("0004f2", "64167f")

_PART_NUMBER_RE = re.compile(r"[0-9]{4}-[0-9]{5}-[0-9]{3}")
# phones.md section 2: "URLs may not contain spaces or backslashes".
_ILLEGAL_RE = re.compile(r"[\s\\\x00-\x1f\x7f-\x9f]")
_MAX_PATH = 255


class ModelError(ValueError):
    """A part number or firmware path that no phone could use."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def firmware_file_name(app_file_path_name: str, part_number: str) -> str:
    """The name the phone actually fetches for APP_FILE_PATH `app_file_path_name`.

    The phone prefixes `<part number>.` to the last path segment (phones.md
    section 3): "sip.ld" -> "3111-44500-001.sip.ld", and for a URL only the
    file name changes:
    "https://relay.example/sw/sip.ld?x=1" -> "https://relay.example/sw/3111-44500-001.sip.ld?x=1".
    """
    if not isinstance(part_number, str) or _PART_NUMBER_RE.fullmatch(part_number) is None:
        raise ModelError(
            f"part number {_shorten(repr(part_number))} is not of the form 3111-44500-001"
        )
    if not isinstance(app_file_path_name, str) or app_file_path_name == "":
        raise ModelError("the APP_FILE_PATH is empty; name the firmware file, e.g. sip.ld")
    if len(app_file_path_name) > _MAX_PATH:
        raise ModelError(
            f"the APP_FILE_PATH is {len(app_file_path_name)} characters, over the phone's "
            f"limit of {_MAX_PATH}"
        )
    bad = _ILLEGAL_RE.search(app_file_path_name)
    if bad is not None:
        raise ModelError(
            f"the APP_FILE_PATH {_shorten(repr(app_file_path_name))} contains {bad.group()!r}; "
            "URLs may not contain spaces, backslashes or control characters"
        )
    path_start = 0
    scheme_end = app_file_path_name.find("://")
    if scheme_end >= 0:
        # The authority (which may hold user:password@) ends at the first '/', '?' or '#'.
        authority = re.match(r"[^/?#]*", app_file_path_name[scheme_end + 3 :])
        slash = scheme_end + 3 + (authority.end() if authority else 0)
        if app_file_path_name[slash : slash + 1] != "/":
            raise ModelError(
                f"the URL {_shorten(repr(app_file_path_name))} has no path; end it with the "
                "firmware file name, e.g. /sip.ld"
            )
        path_start = slash
    path_end = len(app_file_path_name)
    for separator in "?#":
        found = app_file_path_name.find(separator, path_start)
        if found >= 0:
            path_end = min(path_end, found)
    name_start = app_file_path_name.rfind("/", path_start, path_end) + 1
    if name_start >= path_end:
        raise ModelError(
            f"the APP_FILE_PATH {_shorten(repr(app_file_path_name))} ends in a directory; "
            "end it with the firmware file name, e.g. sip.ld"
        )
    return f"{app_file_path_name[:name_start]}{part_number}.{app_file_path_name[name_start:]}"


def _shorten(text: str) -> str:
    """Keep user text in a message without echoing all of it."""
    return text if len(text) <= 80 else text[:77] + "..."


# cloud.md "Scheduled tasks": video bars cannot take a scheduled check-sync.
_VIDEO_BAR_MODELS = ("studiox", "polystudiox", "g7500")


def is_video_bar(model: str, type: str | None) -> bool:
    """Poly Studio X and G7500 video bars (by model), or any device whose type says video.

    They get a configuration change at their next poll only (cloud.md
    "Scheduled tasks"), so a scheduled check-sync reports them Not Applicable.
    """
    key = re.sub(r"[\s_\-]", "", model).lower()
    if key.startswith(_VIDEO_BAR_MODELS):
        return True
    return type is not None and "video" in type.lower()


# PDMS-E guide "Controlling Devices via REST API": the REST API arrived with UC
# Software 5.4 on VVX and 5.8 on Trio; SoundPoint/SoundStation IP never had it.
_REST_SINCE = (("vvx", (5, 4)), ("trio", (5, 8)))


def has_rest_api(model: str, firmware: str | None) -> bool:
    """Whether the device answers the REST API the relay drives tasks with.

    A VVX or Trio whose firmware is not known yet is assumed to have it (every
    current release does); SPIP/SSIP and unknown models have none.
    """
    key = re.sub(r"[\s_\-]", "", model).lower()
    if key.startswith(("spip", "ssip")):
        return False
    for family, since in _REST_SINCE:
        if family in key:
            numbers = re.match(r"(\d+)\.(\d+)", firmware or "")
            if numbers is None:
                return True
            return (int(numbers.group(1)), int(numbers.group(2))) >= since
    return False
