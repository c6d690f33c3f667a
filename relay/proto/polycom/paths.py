"""Classify the request paths of the phone-facing provisioning service, safely.

Phones ask for a handful of name shapes (phones.md section 2): the master
file by MAC or `000000000000.cfg`, per-MAC files (`<mac>-phone.cfg`,
`<mac>-boot.log`, ...), shared files (`000000000000-license.cfg`), firmware and
other resources, optionally under one of the directories the master file
names. Anything else, and above all anything that could step outside the
served tree (`..`, encoded separators, double encoding, overlong UTF-8), is
refused with one ``PathRejected`` before any file is touched. Pure stdlib.

Decisions: the path is percent-decoded once, segment by segment, after
splitting on '/'; only printable ASCII is accepted raw; a query is ignored
(the whole raw string is still capped at MAX_RAW); the suffixes that make a
name an upload or generated file are matched exactly (phones send them
lower-case) while the MAC matches in either case; `000000000000-<name>` is a
shared "global_file" even with an upload suffix (`000000000000-directory.xml`
is fetched, not written); a name starting with a MAC but of no listed shape
(`0004f2a1b2c3.log`) is a plain "resource".
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MAX_PATH = 512
MAX_NAME = 255
# Bounds the work done on a request line whose query (ignored) is huge.
MAX_RAW = 8192

DIRECTORIES = frozenset(
    {
        "misc",
        "contacts",
        "overrides",
        "license",
        "userprofiles",
        "certificates",
        "flk",
        "logs",
        "core",
        "calllists",
    }
)
UPLOAD_SUFFIXES = (
    "-boot.log",
    "-app.log",
    "-phone.cfg",
    "-web.cfg",
    "-system.cfg",
    "-calls.xml",
    "-directory.xml",
)
LOG_SUFFIXES = ("-boot.log", "-app.log")
GENERATED_SUFFIX = "-profile.cfg"

_MAX_SEGMENTS = 3
_IMAGES = "images"
_ZERO_MAC = "000000000000"
# phones.md section 2: no spaces or backslashes; this also rules out '.',
# '..', drive letters (':') and every non-ASCII look-alike of a dot or slash.
_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._\-]*")
_MAC_PREFIX_RE = re.compile(r"[0-9A-Fa-f]{12}")
_IMAGE_ID_RE = re.compile(r"[0-9a-f]{8,64}")
_RAW_RE = re.compile(r"[!-~]*")
_ESCAPE_RE = re.compile(r"%(?![0-9A-Fa-f]{2})")


class PathRejected(ValueError):
    """A request path that is not one of the shapes a phone asks for, or is unsafe."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True, slots=True)
class ProvPath:
    """What a request path names; see classify for the kinds."""

    kind: str
    name: str
    directory: str
    mac: str | None
    image_id: str | None = None


def classify(raw_path: str) -> ProvPath:
    """Classify `raw_path`, the path as received (percent-encoded, query allowed).

    Kinds: "default_master" (000000000000.cfg), "master" (<mac>.cfg),
    "generated" (<mac>-profile.cfg), "upload" (<mac> + one of UPLOAD_SUFFIXES),
    "device_file" (<mac>-<other>), "global_file" (000000000000-<name>),
    "image" (images/<id>/<file>), "resource" (any other safe file name).
    A leading directory from DIRECTORIES is allowed except for master,
    generated and image paths.
    """
    if not isinstance(raw_path, str):
        raise PathRejected(f"the request path is a {type(raw_path).__name__}, not text")
    if len(raw_path) > MAX_RAW:
        raise PathRejected(f"the request target is over {MAX_RAW} characters")
    path = raw_path.split("?", 1)[0]
    if len(path) > MAX_PATH:
        raise PathRejected(f"the request path is over {MAX_PATH} characters")
    if _RAW_RE.fullmatch(path) is None:
        raise PathRejected(
            "the request path holds a space, a control or a non-ASCII character; "
            "percent-encode it (file names are ASCII letters, digits, '.', '_' and '-')"
        )
    if not path.startswith("/"):
        raise PathRejected("the request path does not start with '/'")
    segments = [_decode_segment(segment) for segment in path[1:].split("/")]
    if len(segments) > _MAX_SEGMENTS:
        raise PathRejected(
            f"the request path has {len(segments)} segments; at most {_MAX_SEGMENTS} "
            "(images/<id>/<file>) are served"
        )
    for segment in segments:
        _check_name(segment)
    if len(segments) == 1:
        return _classify_name(segments[0], "")
    first = segments[0].lower()
    if first == _IMAGES:
        return _classify_image(segments)
    if len(segments) == 3:
        raise PathRejected("only images/<id>/<file> paths have three segments")
    if first not in DIRECTORIES:
        raise PathRejected(
            f"{_shorten(segments[0])!r} is not a served directory; the directories are "
            f"{', '.join(sorted(DIRECTORIES))}"
        )
    classified = _classify_name(segments[1], first)
    if classified.kind in ("default_master", "master", "generated"):
        raise PathRejected(
            f"a {classified.kind.replace('_', ' ')} file is served from the root only, "
            f"not from {first}/"
        )
    return classified


def _decode_segment(segment: str) -> str:
    """Percent-decode one segment exactly once; refuse what decoding could smuggle in."""
    if segment == "":
        raise PathRejected("the request path has an empty segment ('//' or a trailing '/')")
    if _ESCAPE_RE.search(segment) is not None:
        raise PathRejected("the request path has a '%' not followed by two hex digits")
    if "%" not in segment:
        return segment
    raw = bytearray()
    index = 0
    while index < len(segment):
        if segment[index] == "%":
            raw.append(int(segment[index + 1 : index + 3], 16))
            index += 3
        else:
            raw.append(ord(segment[index]))
            index += 1
    try:
        decoded = raw.decode("utf-8")  # strict: overlong forms such as %c0%ae are refused
    except UnicodeDecodeError:
        raise PathRejected("the request path decodes to invalid UTF-8") from None
    for smuggled in ("/", "\\", "%"):
        if smuggled in decoded:
            raise PathRejected(
                f"the request path holds an encoded {smuggled!r}; separators and double "
                "encoding are refused"
            )
    return decoded


def _check_name(segment: str) -> None:
    if segment in (".", ".."):
        raise PathRejected("the request path has a '.' or '..' segment")
    if len(segment) > MAX_NAME:
        raise PathRejected(f"a segment of the request path is over {MAX_NAME} characters")
    if _NAME_RE.fullmatch(segment) is None:
        raise PathRejected(
            f"{_shorten(segment)!r} is not a served file name: names start with a letter or "
            "digit and hold only ASCII letters, digits, '.', '_' and '-' (no spaces)"
        )


def _classify_name(name: str, directory: str) -> ProvPath:
    if _MAC_PREFIX_RE.match(name) is None:
        return ProvPath("resource", name, directory, None)
    mac, rest = name[:12].lower(), name[12:]
    named = mac + rest
    if mac == _ZERO_MAC:
        if rest == ".cfg":
            return ProvPath("default_master", named, directory, None)
        if rest.startswith("-") and len(rest) > 1:
            return ProvPath("global_file", named, directory, None)
        return ProvPath("resource", name, directory, None)
    if rest == ".cfg":
        return ProvPath("master", named, directory, mac)
    if rest == GENERATED_SUFFIX:
        return ProvPath("generated", named, directory, mac)
    if rest in UPLOAD_SUFFIXES:
        return ProvPath("upload", named, directory, mac)
    if rest.startswith("-") and len(rest) > 1:
        return ProvPath("device_file", named, directory, mac)
    return ProvPath("resource", name, directory, None)


def _classify_image(segments: list[str]) -> ProvPath:
    if len(segments) != 3:
        raise PathRejected("an image path is images/<id>/<file>")
    image_id, name = segments[1], segments[2]
    if _IMAGE_ID_RE.fullmatch(image_id) is None:
        raise PathRejected(f"image id {_shorten(image_id)!r} is not 8 to 64 lower-case hex digits")
    return ProvPath("image", name, "", None, image_id)


def _shorten(text: str) -> str:
    """Keep user text in a message without echoing all of it."""
    return text if len(text) <= 80 else text[:77] + "..."
