"""The phone web server's two ways of checking `Polycom` + admin password (phones.md section 4).

Some firmware wants Basic, some Digest, so a client must do both; the
simulator picks one per model so both paths get exercised. Digest follows
RFC 7616 with MD5 and qop=auth, which is what the phones offer and what
curl and aiohttp speak; nonces are random per challenge, remembered for a
while, and the nonce count must grow (a replayed header is refused).
The header syntax and the response hash are the agent's too, in
`relay.proto.http.digest`, so the simulator checks what the agent computes.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets
from collections import OrderedDict

from relay.proto.http import digest

USER = "Polycom"
REALM = "Polycom"
MAX_NONCES = 256
# Models without the REST API (SoundPoint IP / SoundStation IP run UC Software 4.x).
_NO_REST_PREFIXES = ("SPIP", "SSIP")
_BASIC_RE = re.compile(r"VVX[1-4][0-9]{2}")


def auth_scheme_for(model: str) -> str | None:
    """ "basic" for VVX 1xx-4xx, None for SoundPoint/SoundStation IP (no REST), else "digest"."""
    upper = model.upper()
    if upper.startswith(_NO_REST_PREFIXES):
        return None
    if _BASIC_RE.fullmatch(upper):
        return "basic"
    return "digest"


def check_basic(authorization: str | None, password: str) -> bool:
    if authorization is None or authorization[:6].lower() != "basic ":
        return False
    try:
        decoded = base64.b64decode(authorization[6:].strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return False
    user, sep, given = decoded.partition(":")
    return bool(sep) and _same(user, USER) and _same(given, password)


def basic_challenge() -> str:
    return f'Basic realm="{REALM}"'


class DigestVerifier:
    """Issues nonces and checks RFC 7616 MD5/qop=auth answers to them."""

    def __init__(self) -> None:
        self._nonces: OrderedDict[str, int] = OrderedDict()

    def challenge(self) -> str:
        nonce = secrets.token_hex(16)
        self._nonces[nonce] = 0
        while len(self._nonces) > MAX_NONCES:
            self._nonces.popitem(last=False)
        opaque = hashlib.md5(nonce.encode(), usedforsecurity=False).hexdigest()
        return (
            f'Digest realm="{REALM}", qop="auth", algorithm=MD5, nonce="{nonce}", opaque="{opaque}"'
        )

    def check(self, authorization: str | None, method: str, uri: str, password: str) -> bool:
        """Whether the header proves the password for this method and request target."""
        if authorization is None or authorization[:7].lower() != "digest ":
            return False
        params = parse_params(authorization[7:])
        if params is None:
            return False
        nonce = params.get("nonce", "")
        if (
            params.get("username") != USER
            or params.get("realm") != REALM
            or params.get("uri") != uri
            or params.get("qop") != "auth"
            or params.get("algorithm", "MD5").upper() != "MD5"
            or nonce not in self._nonces
        ):
            return False
        try:
            count = int(params.get("nc", ""), 16)
        except ValueError:
            return False
        cnonce = params.get("cnonce", "")
        if not cnonce or count <= self._nonces[nonce]:
            return False
        expected = digest.response(
            algorithm="MD5",
            username=USER,
            realm=REALM,
            password=password,
            method=method,
            uri=uri,
            nonce=nonce,
            nc=params["nc"],
            cnonce=cnonce,
            qop="auth",
        )
        if not _same(params.get("response", "").lower(), expected):
            return False
        self._nonces[nonce] = count
        return True


def parse_params(text: str) -> dict[str, str] | None:
    """`a="x", b=y` auth parameters (the last of a repeated name wins); None when not that shape."""
    try:
        return dict(digest.parse_params(text))
    except digest.DigestError:
        return None


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))
