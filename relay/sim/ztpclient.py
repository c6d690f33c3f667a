"""A simulated phone's zero-touch (ZTP) lookup: where the redirect service says to provision.

phones.md section 1.5: when DHCP and DHCPINFORM gave no boot server and
`device.prov.ztpEnabled=1`, the phone asks the redirection service by MAC.
The relay answers `GET {ztp_url}/devices/{mac12}` with 200
`{"mac", "url", "user", "password"}` or 404 (relay/frontend/ztp.py).
This module holds the pure part, building the lookup URL and checking the
answer; the request itself goes out on the phone's own HTTP session.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from yarl import URL

# A directory entry is a few hundred bytes; anything far larger is not one.
MAX_ANSWER = 16 * 1024
MAX_URL = 1024
MAX_CREDENTIAL = 255
SCHEMES = ("http", "https", "ftp", "ftps", "tftp")
# Printable ASCII but space and backslash: phones.md section 2, "URLs may not
# contain spaces or backslashes".
_URL_RE = re.compile(r"[\x21-\x5b\x5d-\x7e]+")
_CREDENTIAL_RE = re.compile(r"[\x20-\x7e]*")


class ZtpError(ValueError):
    """An answer of the ZTP service the phone cannot use."""


@dataclass(frozen=True, slots=True)
class ZtpAnswer:
    """The provisioning server the service names, with the account for it."""

    url: str
    user: str = ""
    password: str = field(default="", repr=False)

    def server(self) -> str:
        """The server URL with the account in it, as a phone's server list holds it.

        Credentials already in the URL stay; otherwise `user`/`password` go in.
        """
        url = URL(self.url)
        if url.user is not None or not self.user:
            return self.url
        return str(url.with_user(self.user).with_password(self.password or None))


def lookup_url(ztp_url: str, mac: str) -> URL:
    """`{ztp_url}/devices/{mac12}`."""
    return URL(ztp_url.rstrip("/") + f"/devices/{mac}")


def parse_answer(body: bytes, mac: str) -> ZtpAnswer:
    """The 200 answer for `mac`: a JSON object with a usable URL; ZtpError otherwise."""
    if len(body) > MAX_ANSWER:
        raise ZtpError(f"the answer is over {MAX_ANSWER} bytes")
    try:
        document = json.loads(body)
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise ZtpError("the answer is not JSON") from None
    if not isinstance(document, dict):
        raise ZtpError("the answer is not a JSON object")
    answered = document.get("mac")
    if isinstance(answered, str) and answered.lower().replace(":", "").replace("-", "") != mac:
        raise ZtpError("the answer is for another MAC")
    url = document.get("url")
    if not isinstance(url, str) or not 0 < len(url) <= MAX_URL or _URL_RE.fullmatch(url) is None:
        raise ZtpError("the answer has no usable url (no spaces or backslashes, at most 1 KiB)")
    try:
        parts = urlsplit(url)
        usable = parts.scheme.lower() in SCHEMES and bool(parts.hostname)
        port_ok = parts.port is None or parts.port > 0
    except ValueError:
        raise ZtpError("the url is not a URL") from None
    if not (usable and port_ok):
        raise ZtpError(f"the url is not an {', '.join(SCHEMES)} URL with a host")
    return ZtpAnswer(
        url=url,
        user=_credential(document.get("user"), "user"),
        password=_credential(document.get("password"), "password"),
    )


def _credential(value: object, name: str) -> str:
    """An optional string; the value itself is never quoted (it may be a password)."""
    if value is None:
        return ""
    if (
        not isinstance(value, str)
        or len(value) > MAX_CREDENTIAL
        or _CREDENTIAL_RE.fullmatch(value) is None
    ):
        raise ZtpError(f"the {name} is not a printable string of at most {MAX_CREDENTIAL}")
    return value
