"""HTTP Digest access authentication, client side (RFC 7616), as pure functions.

Phones answer their REST API with Basic on some firmware and Digest on other
(phones.md section 4: "a client must do both"). The client keeps the rest of
the state (which scheme worked, the nonce count); this module only picks a
challenge and writes the `Authorization` header answering it, so it is tested
without sockets against the RFC 7616 section 3.9.1 example.

The header syntax and the response hash are shared with the phone simulator's
server side in `relay.proto.http.digest`; this module re-exports the parser
so its callers need one import.

Supported: MD5, SHA-256 and their `-sess` variants (RFC 7616 section 3.4.2),
`qop=auth`, and the RFC 2069 form without qop that old servers still send.
`qop=auth-int` is refused: it hashes the body, which no phone asks for.
"""

from __future__ import annotations

from relay.proto.http.digest import Challenge, DigestError, parse_challenges, quote, response

__all__ = ["Challenge", "DigestError", "authorization", "find", "parse_challenges"]


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
    # RFC 7616 section 3.3: qop lists what the server accepts. Answer "auth" when offered,
    # the RFC 2069 form when nothing is, and let `response` refuse anything else by name.
    qops = [q.strip().lower() for q in challenge.get("qop").split(",") if q.strip()]
    qop = ("auth" if "auth" in qops else challenge.get("qop")) if qops else ""
    count = f"{nc:08x}"
    answer = response(
        algorithm=algorithm,
        username=user,
        realm=realm,
        password=password,
        method=method,
        uri=uri,
        nonce=nonce,
        nc=count,
        cnonce=cnonce,
        qop=qop,
    )
    parts = [
        f'username="{quote(user)}"',
        f'realm="{quote(realm)}"',
        f'uri="{quote(uri)}"',
        f"algorithm={algorithm}",
        f'nonce="{quote(nonce)}"',
    ]
    if qop:
        parts += [f"nc={count}", f'cnonce="{quote(cnonce)}"', "qop=auth"]
    parts.append(f'response="{answer}"')
    opaque = challenge.get("opaque")
    if opaque:
        parts.append(f'opaque="{quote(opaque)}"')
    return "Digest " + ", ".join(parts)
