"""HTTP Digest access authentication, client side (RFC 7616), as pure functions.

Phones answer their REST API with Basic on some firmware and Digest on other
(phones.md section 4: "a client must do both"). The client keeps the rest of
the state (which scheme worked, the nonce count); this module only parses
challenges and computes the `Authorization` header, so it is tested without
sockets against the RFC 7616 section 3.9.1 example.

Supported: MD5, SHA-256 and their `-sess` variants (RFC 7616 section 3.4.2),
`qop=auth`, and the RFC 2069 form without qop that old servers still send.
`qop=auth-int` is refused: it hashes the body, which no phone asks for.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

# RFC 7616 section 3.3: a challenge is at most a few hundred bytes; anything huge is hostile.
MAX_HEADER = 4096

# RFC 7616 section 3.2: algorithm names -> hashlib names.
_HASHES = {"MD5": "md5", "SHA-256": "sha256"}

# RFC 7235 section 2.1: auth-param = token BWS "=" BWS ( token / quoted-string ).
_TCHARS = r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_PARAM = re.compile(
    rf"\s*({_TCHARS})\s*=\s*(?:\"((?:[^\"\\]|\\.)*)\"|({_TCHARS}))\s*(,|$)",
)
_SCHEME = re.compile(rf"\s*({_TCHARS})(?:\s+|$)")


class DigestError(ValueError):
    """A challenge this client cannot answer; the text says why."""


@dataclass(frozen=True, slots=True)
class Challenge:
    """One `WWW-Authenticate` challenge: the scheme (lower case) and its parameters.

    Parameter names are lower case (RFC 7235 section 2.1: they are case-insensitive).
    """

    scheme: str
    params: tuple[tuple[str, str], ...]

    def get(self, name: str, default: str = "") -> str:
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
    if len(header) > MAX_HEADER:
        raise DigestError("WWW-Authenticate header is too long")
    out: list[Challenge] = []
    pos = 0
    while pos < len(header):
        if header[pos] in ", \t":
            pos += 1
            continue
        scheme = _SCHEME.match(header, pos)
        if scheme is None:
            raise DigestError("WWW-Authenticate header is malformed")
        pos = scheme.end()
        params: list[tuple[str, str]] = []
        while pos < len(header):
            param = _PARAM.match(header, pos)
            if param is None:
                break
            quoted, token = param.group(2), param.group(3)
            value = re.sub(r"\\(.)", r"\1", quoted) if quoted is not None else token
            params.append((param.group(1).lower(), value))
            pos = param.end()
        out.append(Challenge(scheme.group(1).lower(), tuple(params)))
    return tuple(out)


def find(challenges: tuple[Challenge, ...], scheme: str) -> Challenge | None:
    """The first challenge of `scheme` (lower case), preferring SHA-256 for Digest.

    RFC 7616 section 3.7: a server offering several algorithms lists its preferred
    first, and a client uses the strongest one it supports.
    """
    matching = [c for c in challenges if c.scheme == scheme]
    for challenge in matching:
        if challenge.get("algorithm", "MD5").upper().startswith("SHA-256"):
            return challenge
    return matching[0] if matching else None


def authorization(
    challenge: Challenge,
    *,
    user: str,
    password: str,
    method: str,
    uri: str,
    nc: int,
    cnonce: str,
) -> str:
    """The `Authorization` value answering `challenge` (RFC 7616 section 3.4).

    `nc` is the count of requests made with this nonce, starting at 1
    (section 3.4: the server uses it to detect replays).
    """
    if challenge.scheme != "digest":
        raise DigestError(f"not a Digest challenge: {challenge.scheme}")
    realm = challenge.get("realm")
    nonce = challenge.get("nonce")
    if not nonce:
        raise DigestError("the Digest challenge has no nonce")
    algorithm = challenge.get("algorithm", "MD5")
    session = algorithm.upper().endswith("-SESS")
    base = algorithm[: -len("-sess")] if session else algorithm
    hasher = _HASHES.get(base.upper())
    if hasher is None:
        raise DigestError(f"unsupported Digest algorithm {algorithm}")
    qops = [q.strip().lower() for q in challenge.get("qop").split(",") if q.strip()]
    if qops and "auth" not in qops:
        raise DigestError(f"unsupported Digest qop {challenge.get('qop')}")

    def h(text: str) -> str:
        return hashlib.new(hasher, text.encode()).hexdigest()

    ha1 = h(f"{user}:{realm}:{password}")
    if session:
        ha1 = h(f"{ha1}:{nonce}:{cnonce}")
    ha2 = h(f"{method}:{uri}")
    count = f"{nc:08x}"
    if qops:
        response = h(f"{ha1}:{nonce}:{count}:{cnonce}:auth:{ha2}")
    else:
        response = h(f"{ha1}:{nonce}:{ha2}")
    parts = [
        f'username="{_quote(user)}"',
        f'realm="{_quote(realm)}"',
        f'uri="{_quote(uri)}"',
        f"algorithm={algorithm}",
        f'nonce="{_quote(nonce)}"',
    ]
    if qops:
        parts += [f"nc={count}", f'cnonce="{_quote(cnonce)}"', "qop=auth"]
    parts.append(f'response="{response}"')
    opaque = challenge.get("opaque")
    if opaque:
        parts.append(f'opaque="{_quote(opaque)}"')
    return "Digest " + ", ".join(parts)


def _quote(value: str) -> str:
    """RFC 7230 section 3.2.6 quoted-string escaping."""
    return value.replace("\\", "\\\\").replace('"', '\\"')
