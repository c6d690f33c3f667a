"""The simulator's firmware image format.

phones.md section 5: "firmware fetched only when the offered version
differs". To decide that without downloading, an image starts with a short
text header the phone reads with a ranged GET (the first HEADER_PROBE_BYTES
bytes); the payload after it is deterministic so a server can regenerate or
cache it, and its sha256 in the header lets the phone verify the download.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

MAGIC = b"SIMFW1"
# How much of an image the phone reads to learn the offered version.
HEADER_PROBE_BYTES = 512

_TOKEN_RE = re.compile(r"[!-~]{1,64}")
_HEADER_RE = re.compile(
    rb"SIMFW1 family=(?P<family>[!-~]{1,64}) version=(?P<version>[!-~]{1,64}) "
    rb"size=(?P<size>[0-9]{1,12}) sha256=(?P<sha256>[0-9a-f]{64})\n"
)


class FirmwareError(ValueError):
    """An image to make has unusable parts, or a downloaded image fails verification."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True, slots=True)
class FirmwareHeader:
    """The first line of an image: what it is and how to check the payload after it."""

    family: str
    version: str
    size: int
    sha256: str
    length: int  # bytes of the header line itself, newline included


def payload(family: str, version: str, size: int) -> bytes:
    """Deterministic bytes: the same family and version always give the same image."""
    return hashlib.shake_256(f"simfw/{family}/{version}".encode()).digest(size)


def make_image(family: str, version: str, size: int) -> bytes:
    """A complete image: header line, then `size` payload bytes."""
    for label, value in (("family", family), ("version", version)):
        if _TOKEN_RE.fullmatch(value) is None:
            raise FirmwareError(f"the {label} {value!r} must be 1 to 64 printable ASCII, no spaces")
    if size < 0:
        raise FirmwareError(f"the payload size {size} is negative")
    body = payload(family, version, size)
    digest = hashlib.sha256(body).hexdigest()
    header = f"SIMFW1 family={family} version={version} size={size} sha256={digest}\n"
    return header.encode("ascii") + body


def read_header(first_bytes: bytes) -> FirmwareHeader | None:
    """The header at the start of `first_bytes`, or None if they do not start an image."""
    match = _HEADER_RE.match(first_bytes[:HEADER_PROBE_BYTES])
    if match is None:
        return None
    return FirmwareHeader(
        family=match["family"].decode("ascii"),
        version=match["version"].decode("ascii"),
        size=int(match["size"]),
        sha256=match["sha256"].decode("ascii"),
        length=match.end(),
    )


class ImageCheck:
    """Verifies an image as its bytes arrive, keeping only the header: a phone (and a
    fleet of 500 upgrading at once) never holds a whole image in memory."""

    def __init__(self) -> None:
        self._start = b""
        self._header: FirmwareHeader | None = None
        self._hash = hashlib.sha256()
        self._received = 0
        self._headless = False

    def feed(self, chunk: bytes) -> None:
        """Take the next bytes; never raises (`result` says what was wrong)."""
        if self._headless:
            return
        if self._header is None:
            self._start += chunk
            if b"\n" not in self._start and len(self._start) < HEADER_PROBE_BYTES:
                return
            self._header = read_header(self._start)
            if self._header is None:
                self._headless = True
                return
            chunk, self._start = self._start[self._header.length :], b""
        self._hash.update(chunk)
        self._received += len(chunk)

    def result(self) -> FirmwareHeader:
        """The header of the complete image whose payload matched its size and sha256."""
        header = self._header
        if self._headless:
            raise FirmwareError("the image does not start with a SIMFW1 header")
        if header is None:
            header = read_header(self._start)
            if header is None:
                raise FirmwareError("the image does not start with a SIMFW1 header")
            self._hash.update(self._start[header.length :])
            self._received += len(self._start) - header.length
        if self._received != header.size:
            raise FirmwareError(
                f"the payload is {self._received} bytes, the header says {header.size}"
            )
        digest = self._hash.hexdigest()
        if digest != header.sha256:
            raise FirmwareError(
                f"the payload's sha256 is {digest}, the header says {header.sha256}"
            )
        return header
