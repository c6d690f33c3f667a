"""HTTP Digest access authentication (RFC 7616) as pure functions, for both sides.

The management agent answers the phones' Digest challenges and the phone
simulator issues and checks them (phones.md section 4), so the header syntax
and the response hash live here once: the agent and the simulator cannot
drift apart, and the RFC 7616 section 3.9.1 example tests both at once.

Headers come from the network (a phone on the LAN, or anyone who reaches the
simulator), so parsing is bounded (`MAX_HEADER`, `MAX_PARAMS`) and any bad
input raises `DigestError` and nothing else.

Pure stdlib (relay.proto rules): no sockets, no asyncio, no logging.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

# RFC 7616 section 3.3: a challenge is at most a few hundred bytes; anything huge is hostile.
MAX_HEADER = 4096
# RFC 7616 sections 3.3-3.4 define about a dozen parameters; a header with more is hostile.
MAX_PARAMS = 64

# RFC 7616 section 3.2: algorithm names -> hashlib names.
_HASHES = {"MD5": "md5", "SHA-256": "sha256"}
# RFC 7616 section 3.4.2: "<algorithm>-sess" also hashes the nonce and cnonce into A1.
_SESSION_SUFFIX = "-SESS"

# RFC 7235 section 2.1: auth-param = token BWS "=" BWS ( token / quoted-string ).
_TCHARS = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_PARAM = re.compile(
    rf"\s*({_TCHARS})\s*=\s*(?:\"((?:[^\"\\]|\\.)*)\"|({_TCHARS}))\s*(,|$)",
)
_SCHEME = re.compile(rf"\s*({_TCHARS})(?:\s+|$)")
# RFC 7230 section 3.2.6: quoted-pair = "\" ( HTAB / SP / VCHAR / obs-text ).
_QUOTED_PAIR = re.compile(r"\\(.)")


class DigestError(ValueError):
    """A header this module cannot parse, or a challenge it cannot answer; the text says why."""


@dataclass(frozen=True, slots=True)
class Challenge:
    """One challenge (`WWW-Authenticate`) or credentials (`Authorization`).

    RFC 7235 sections 2.1 and 2.2 give both the same syntax: a scheme (here lower
    case) and its parameters, whose names are lower case too because they are
    case-insensitive (section 2.1). Parameters keep their order and repeats.
    """

    scheme: str
    params: tuple[tuple[str, str], ...]

    def get(self, name: str, default: str = "") -> str:
        """The first value of parameter `name` (lower case), or `default`."""
        for key, value in self.params:
            if key == name:
                return value
        return default

    @property
    def stale(self) -> bool:
        """RFC 7616 section 3.3: the nonce expired but the credentials were right."""
        return self.get("stale").lower() == "true"


def parse_challenges(header: str) -> tuple[Challenge, ...]:
    """Split a `WWW-Authenticate` value into its challenges (RFC 7235 section 4.1).

    A server may offer several schemes in one header (`Basic realm="x", Digest ...`),
    so parameters run until the next bare token that is not followed by `=`.
    """
    _check_length(header)
    out: list[Challenge] = []
    count = 0
    pos = 0
    while pos < len(header):
        if header[pos] in ", \t":
            pos += 1
            continue
        scheme = _SCHEME.match(header, pos)
        if scheme is None:
            raise DigestError("the header is malformed")
        params, pos = _params(header, scheme.end(), count)
        count += len(params)
        out.append(Challenge(scheme.group(1).lower(), params))
    return tuple(out)


def parse_params(text: str) -> tuple[tuple[str, str], ...]:
    """An auth-param list alone (`a="x", b=y`), as after `Digest ` (RFC 7235 section 2.1).

    Unlike `parse_challenges` the whole text must be parameters: a server reading
    one `Authorization` value (RFC 7235 section 4.2) has no second scheme to expect.
    """
    _check_length(text)
    params, end = _params(text, 0, 0)
    if text[end:].strip():
        raise DigestError("the auth parameters are malformed")
    return params


def response(
    *,
    algorithm: str,
    username: str,
    realm: str,
    password: str,
    method: str,
    uri: str,
    nonce: str,
    nc: str,
    cnonce: str,
    qop: str,
) -> str:
    """The `response` parameter, lower-case hex (RFC 7616 section 3.4.1).

    `nc` is the nonce count exactly as sent (eight hex digits, section 3.4), since
    the server hashes what it received. `qop` is "auth", or "" for the RFC 2069
    form without qop, nc or cnonce that old servers still send (section 3.4.1).
    `qop=auth-int` is refused: it hashes the body, which no phone asks for.
    """
    upper = algorithm.upper()
    session = upper.endswith(_SESSION_SUFFIX)
    hasher = _HASHES.get(upper.removesuffix(_SESSION_SUFFIX))
    if hasher is None:
        raise DigestError(f"unsupported Digest algorithm {algorithm}")
    if qop not in ("auth", ""):
        raise DigestError(f"unsupported Digest qop {qop}")

    def h(text: str) -> str:
        return hashlib.new(hasher, text.encode("utf-8"), usedforsecurity=False).hexdigest()

    ha1 = h(f"{username}:{realm}:{password}")
    if session:
        ha1 = h(f"{ha1}:{nonce}:{cnonce}")
    ha2 = h(f"{method}:{uri}")
    if qop:
        return h(f"{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}")
    return h(f"{ha1}:{nonce}:{ha2}")


def quote(value: str) -> str:
    """`value` as the inside of a quoted-string (RFC 7230 section 3.2.6); the parsers undo it."""
    return value.replace("\\", "\\\\").replace('"', '\\"')


def _check_length(text: str) -> None:
    if len(text) > MAX_HEADER:
        raise DigestError("the header is too long")


def _params(text: str, pos: int, count: int) -> tuple[tuple[tuple[str, str], ...], int]:
    """The auth-params from `pos` up to the first text that is not one, and where that is.

    `count` params were already read from this header; `MAX_PARAMS` bounds the total.
    """
    params: list[tuple[str, str]] = []
    while pos < len(text):
        param = _PARAM.match(text, pos)
        if param is None:
            break
        if count + len(params) >= MAX_PARAMS:
            raise DigestError(f"more than {MAX_PARAMS} auth parameters")
        quoted, token = param.group(2), param.group(3)
        value = _QUOTED_PAIR.sub(r"\1", quoted) if quoted is not None else token
        params.append((param.group(1).lower(), value))
        pos = param.end()
    return tuple(params), pos
