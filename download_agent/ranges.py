"""Reading a server's answer to a (possibly ranged) GET for an image: pure rules.

RFC 9110 section 14.4 (Content-Range) and 15.3.7 (206 Partial Content): a server
may ignore Range and answer 200 with the whole body, or answer 206 with the
range it chose. The agent accepts only an answer whose bytes continue exactly
where its partial file ends and whose length matches what the image size implies.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from download_agent.faults import FetchFailed

MAX_HEADER = 200
_CONTENT_RANGE = re.compile(r"bytes[ \t]+(\d{1,19})-(\d{1,19})/(\d{1,19}|\*)")


class RangeError(ValueError):
    """A Content-Range header that is not `bytes first-last/complete` (RFC 9110 14.4)."""


@dataclass(frozen=True, slots=True)
class ContentRange:
    first: int
    last: int
    complete: int | None


def parse_content_range(value: str) -> ContentRange:
    """`bytes 100-199/1000` (or `/*`): the one form of a 206 answer's single range."""
    if len(value) > MAX_HEADER:
        raise RangeError(f"Content-Range is {len(value)} characters; at most {MAX_HEADER}")
    match = _CONTENT_RANGE.fullmatch(value.strip())
    if match is None:
        raise RangeError(f"Content-Range {value[:60]!r} is not `bytes first-last/complete`")
    first, last = int(match[1]), int(match[2])
    complete = None if match[3] == "*" else int(match[3])
    if last < first or (complete is not None and last >= complete):
        raise RangeError(f"Content-Range {value[:60]!r} is not a valid range")
    return ContentRange(first, last, complete)


@dataclass(frozen=True, slots=True)
class Answer:
    """Where the body starts; `restart` when the server sent the whole image although
    a range was asked, so the partial file must be started over from byte 0."""

    start: int
    restart: bool = False


def check_answer(
    status: int,
    content_range: str | None,
    content_length: int | None,
    asked: int,
    size: int,
) -> Answer:
    """Judge the status line and headers of the answer to a GET from byte `asked` of an
    image of `size` bytes; raise `FetchFailed` when the body cannot be used."""
    if status == 200:
        _length(content_length, size)
        return Answer(0, restart=asked > 0)
    if status == 206:
        try:
            got = parse_content_range(content_range or "")
        except RangeError as exc:
            raise FetchFailed(
                f"the server's partial answer is malformed: {exc}; retrying"
            ) from None
        if got.first != asked:
            raise FetchFailed(
                f"the server ignored the range: asked from byte {asked}, "
                f"it sent from byte {got.first}; retrying"
            )
        if got.last != size - 1 or got.complete not in (None, size):
            raise FetchFailed(
                f"the server's range ends at byte {got.last} of {got.complete}, but the image "
                f"has {size} bytes; nothing published, retrying later"
            )
        _length(content_length, size - asked)
        return Answer(asked)
    if status == 416:
        raise FetchFailed(
            "the server refused the range (HTTP 416); downloading again from the start",
            discard=True,
        )
    raise FetchFailed(f"the server answered HTTP {status}; retrying later")


def _length(content_length: int | None, expected: int) -> None:
    if content_length is not None and content_length != expected:
        raise FetchFailed(
            f"wrong Content-Length: the server announced {content_length} bytes "
            f"where the image needs {expected}; nothing published, retrying later"
        )
