"""The agent's client for the phones' REST API (phones.md section 4).

What the phones demand, and how this client meets it:

- HTTPS with a self-signed certificate: nothing is verified (there is no CA to
  verify against) but TLS 1.2 is the minimum (certs/tls.py policy).
- User `Polycom` and the admin password, Basic on some firmware and Digest
  (RFC 7616) on other: Basic goes first; a 401 with a Digest challenge is
  answered, and the scheme that worked is remembered per phone so later
  requests skip the extra round trip. A remembered nonce that the phone has
  since dropped (with or without `stale=true`) is replaced by the fresh
  challenge once; only a refused answer to a fresh challenge means a wrong
  password.
- One request at a time per phone (a second one gets HTTP 403): a lock per
  MAC serializes everything sent to one phone, and a semaphore bounds how many
  phones are talked to at once across the fleet.
- Busy answers (HTTP 403, Status 4001) are retried with exponential backoff
  and jitter: the phone refused the request without acting on it, so even a
  reboot or a dial is safe to send again. Only a refused connection gets one
  quick retry (the request never left); a timeout or a connection dropped
  mid-request is not retried, since the phone may have acted on it.

Every failure is a `PhoneError` whose reason is fit to show an administrator;
one structured log line is written per failed request, never with secrets.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import random
import secrets
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import aiohttp
from yarl import URL

from certs.tls import phone_rest_context
from management_agent import digest
from management_agent.backoff import Backoff
from management_agent.bodies import read_capped
from relay.logs import event
from relay.sync.messages import MAX_DATA_BYTES, Target

USER = "Polycom"
# A REST answer is a few KiB (runningConfig the largest); more is a broken or hostile phone.
MAX_RESPONSE = 4 * 1024 * 1024
# A fetched file (a screen capture) travels base64-encoded in a JobResult of at most
# MAX_DATA_BYTES, and base64 grows it by 4/3.
MAX_FETCH = MAX_DATA_BYTES * 3 // 4 - 1024
MAX_BACKOFF = 8.0
# Two challenges at most per request: Basic -> Digest, then a stale nonce -> a fresh one.
MAX_AUTH_ROUNDS = 2
OFFLINE = "device offline"
OK = "2000"
BUSY = "4001"

# phones.md section 4, with a hint for the codes an administrator can act on.
STATUS_MEANINGS = {
    "2000": "ok",
    "4000": "invalid input",
    "4001": "device busy",
    "4002": "line not registered",
    "4003": "not allowed",
    "4004": "not supported",
    "4005": "line does not exist",
    "4006": "URLs not configured",
    "4007": "call does not exist",
    "4008": "config export failed",
    "4009": "input size limit exceeded",
    "4010": "default password not allowed: the phone still has its factory admin password",
    "4011": "contact not found",
    "4400": "bad request",
    "4403": "forbidden",
    "5000": "failed to process",
    "5500": "internal error",
}

log = logging.getLogger("management_agent.phone")

Sleep = Callable[[float], Awaitable[None]]


class PhoneError(Exception):
    """A phone request failed; `reason` says why in words an administrator can act on.

    `status` is the phone's REST Status code when it gave one, `http` the HTTP status.
    """

    def __init__(self, reason: str, status: str | None = None, http: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.http = http

    @property
    def offline(self) -> bool:
        """The phone could not be reached at all (as opposed to answering with an error)."""
        return self.reason.startswith(OFFLINE)


def status_reason(status: str) -> str:
    """`phone answered 4010 default password not allowed: ...` for a non-2000 Status."""
    meaning = STATUS_MEANINGS.get(status, "unknown status")
    return f"phone answered {status} {meaning}"


def rest_data(http: int, payload: bytes) -> object:
    """The `data` of a REST answer `{"Status": "2000", "data": ...}` (phones.md section 4).

    Pure, so every malformed shape is tested without sockets. A non-2000 Status wins
    over the HTTP status, since it is the more precise of the two.
    """
    if http == 401:
        raise PhoneError(
            f"authentication failed: the phone refused user {USER} with this password", http=http
        )
    try:
        document = json.loads(payload)
    except (ValueError, RecursionError):
        document = None
    status = _status_of(document)
    if status is None:
        if http == 404:
            raise PhoneError(
                "phone answered HTTP 404: its REST API is off (apps.restapi.enabled) "
                "or this firmware lacks the request",
                http=http,
            )
        if not 200 <= http < 300:
            raise PhoneError(f"phone answered HTTP {http}", http=http)
        raise PhoneError("bad answer from the phone: not a JSON object with a Status", http=http)
    if status != OK:
        raise PhoneError(status_reason(status), status=status, http=http)
    if not 200 <= http < 300:
        raise PhoneError(f"phone answered HTTP {http}", status=status, http=http)
    assert isinstance(document, dict)
    return document.get("data")


def _status_of(document: object) -> str | None:
    """The Status of a parsed answer; phones send a string, some firmware a number."""
    if not isinstance(document, dict):
        return None
    status = document.get("Status")
    if isinstance(status, bool) or not isinstance(status, (str, int)):
        return None
    return str(status)[:16]


def _busy(http: int, payload: bytes, rest: bool) -> str | None:
    """Why the phone refused for now (retry later), or None when it answered.

    For the REST API, HTTP 403 is a busy phone (phones.md section 4) unless its body
    gives a Status other than 4001, which then says what is really wrong (4010, 4403).
    The web server (`fetch`) answers 403 for a switched-off feature too, and this
    client never overlaps its own requests, so there 403 is an answer, not busy.
    """
    if not rest:
        return None
    try:
        status = _status_of(json.loads(payload))
    except (ValueError, RecursionError):
        status = None
    if status == BUSY:
        return status_reason(BUSY)
    if http == 403 and status is None:
        return "phone busy: it answered HTTP 403 (it serves one request at a time)"
    return None


@dataclass(frozen=True, slots=True)
class _Auth:
    """How to authenticate to one phone: the scheme that worked, the Digest nonce in use."""

    scheme: str
    challenge: digest.Challenge | None = None
    nc: int = 0


@dataclass(frozen=True, slots=True)
class _Answer:
    http: int
    payload: bytes
    challenges: tuple[str, ...]


class _Slot:
    """A phone's lock and how many callers hold or wait for it, so idle phones are dropped."""

    __slots__ = ("lock", "users")

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.users = 0


def phone_ssl_context() -> ssl.SSLContext:
    """Phones present self-signed certificates: certs.tls's one named exception to
    verification, kept there with the rest of the TLS policy."""
    return phone_rest_context()


class PhoneClient:
    """REST calls to phones, serialized per phone and bounded across the fleet."""

    def __init__(
        self,
        *,
        port: int = 443,
        timeout: float = 10.0,
        concurrency: int = 32,
        retries: int = 5,
        backoff: float = 0.5,
        rng: random.Random | None = None,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self._port = port
        self._timeout = timeout
        self._concurrency = concurrency
        self._retries = max(0, retries)
        self._backoff = backoff
        self._rng = rng or random.Random()
        self._sleep = sleep
        self._slots: dict[str, _Slot] = {}
        self._auth: dict[str, _Auth] = {}
        self._gate = asyncio.Semaphore(concurrency)
        self._session: aiohttp.ClientSession | None = None
        self._closed = False
        self._in_flight = 0
        self._peak_in_flight = 0

    @property
    def concurrency(self) -> int:
        """How many phones this client talks to at once."""
        return self._concurrency

    @property
    def in_flight(self) -> int:
        """Requests on the wire right now (at most `concurrency`)."""
        return self._in_flight

    @property
    def peak_in_flight(self) -> int:
        """The most requests ever on the wire at once, for health reports and tests."""
        return self._peak_in_flight

    def auth_scheme(self, mac: str) -> str | None:
        """The scheme that last worked for this phone ("basic", "digest"), None if none yet."""
        auth = self._auth.get(mac)
        return None if auth is None else auth.scheme

    async def call(
        self, target: Target, method: str, path: str, data: object | None = None
    ) -> object:
        """One REST request; returns the answer's `data` or raises PhoneError."""
        body = None if data is None else json.dumps({"data": data}).encode()
        try:
            answer = await self._serialized(target, method, path, body, MAX_RESPONSE, rest=True)
            return rest_data(answer.http, answer.payload)
        except PhoneError as exc:
            self._log_failure(target, method, path, exc)
            raise

    async def fetch(self, target: Target, path: str) -> bytes:
        """A plain GET of the phone's web server (`/captureScreen`), same credentials."""
        try:
            answer = await self._serialized(target, "GET", path, None, MAX_FETCH, rest=False)
            if answer.http == 401:
                rest_data(answer.http, answer.payload)
            if answer.http != 200:
                raise PhoneError(f"phone answered HTTP {answer.http}", http=answer.http)
            return answer.payload
        except PhoneError as exc:
            self._log_failure(target, "GET", path, exc)
            raise

    async def aclose(self) -> None:
        self._closed = True
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> PhoneClient:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.aclose()

    async def _serialized(
        self, target: Target, method: str, path: str, body: bytes | None, limit: int, *, rest: bool
    ) -> _Answer:
        """Hold the phone's lock for the request and its busy retries."""
        slot = self._slots.setdefault(target.mac, _Slot())
        slot.users += 1
        try:
            async with slot.lock:
                return await self._with_retries(target, method, path, body, limit, rest=rest)
        finally:
            slot.users -= 1
            if slot.users == 0:
                del self._slots[target.mac]

    async def _with_retries(
        self, target: Target, method: str, path: str, body: bytes | None, limit: int, *, rest: bool
    ) -> _Answer:
        delays = Backoff(base=self._backoff, cap=MAX_BACKOFF, rng=self._rng)
        for attempt in range(self._retries + 1):
            answer = await self._authenticated(target, method, path, body, limit)
            busy = _busy(answer.http, answer.payload, rest)
            if busy is None:
                return answer
            if attempt == self._retries:
                raise PhoneError(
                    f"{busy}; still busy after {self._retries} retries",
                    status=BUSY if busy.startswith("phone answered") else None,
                    http=answer.http,
                )
            await self._sleep(delays.next_delay())
        raise AssertionError("unreachable: the loop returns or raises")

    async def _authenticated(
        self, target: Target, method: str, path: str, body: bytes | None, limit: int
    ) -> _Answer:
        """Send, answering up to MAX_AUTH_ROUNDS challenges (see the module docstring)."""
        fresh = False
        for _round in range(MAX_AUTH_ROUNDS + 1):
            auth = self._auth.get(target.mac, _Auth("basic"))
            header, auth = _authorization(auth, target.password, method, path)
            self._auth[target.mac] = auth
            answer = await self._connected(target, method, path, body, limit, header)
            if answer.http != 401:
                return answer
            retry = _after_401(auth, answer.challenges, fresh=fresh)
            if retry is None:
                return answer
            self._auth[target.mac] = retry
            fresh = True
        return answer

    async def _connected(
        self,
        target: Target,
        method: str,
        path: str,
        body: bytes | None,
        limit: int,
        authorization: str,
    ) -> _Answer:
        """One HTTP exchange, with one quick retry if the connection was refused."""
        for attempt in range(2):
            try:
                return await self._exchange(target, method, path, body, limit, authorization)
            except aiohttp.ClientConnectorError as exc:
                if attempt:
                    raise PhoneError(f"{OFFLINE}: {_why(exc)}") from None
            await self._sleep(min(self._backoff, 1.0))
        raise AssertionError("unreachable: the loop returns or raises")

    async def _exchange(
        self,
        target: Target,
        method: str,
        path: str,
        body: bytes | None,
        limit: int,
        authorization: str,
    ) -> _Answer:
        headers = {"Authorization": authorization, "Accept": "application/json, */*"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        url = URL.build(scheme="https", host=target.address, port=self._port, path=path)
        async with self._gate:
            self._in_flight += 1
            self._peak_in_flight = max(self._peak_in_flight, self._in_flight)
            try:
                async with asyncio.timeout(self._timeout):
                    session = self._ensure_session()
                    async with session.request(
                        method, url, data=body, headers=headers, allow_redirects=False
                    ) as response:
                        payload = await _read_at_most(response, limit)
                        return _Answer(
                            http=response.status,
                            payload=payload,
                            challenges=tuple(response.headers.getall("WWW-Authenticate", ())),
                        )
            except TimeoutError:
                raise PhoneError(f"{OFFLINE}: no answer within {self._timeout:g} s") from None
            except aiohttp.ClientSSLError as exc:
                raise PhoneError(
                    f"TLS handshake failed ({_why(exc)}); the agent requires TLS 1.2 or later"
                ) from None
            except aiohttp.ClientConnectorError:
                raise
            except aiohttp.ClientConnectionError as exc:
                raise PhoneError(f"{OFFLINE}: {_why(exc)}") from None
            except aiohttp.ClientError as exc:
                raise PhoneError(f"bad answer from the phone: {_why(exc)}") from None
            finally:
                self._in_flight -= 1

    def _ensure_session(self) -> aiohttp.ClientSession:
        if self._closed:
            raise PhoneError("the phone client is closed")
        if self._session is None:
            # force_close: one connection per request, so descriptors stay bounded by
            # `concurrency` however many phones were talked to recently.
            connector = aiohttp.TCPConnector(
                ssl=phone_ssl_context(), force_close=True, limit=self._concurrency
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                cookie_jar=aiohttp.DummyCookieJar(),
                timeout=aiohttp.ClientTimeout(total=None),
            )
        return self._session

    def _log_failure(self, target: Target, method: str, path: str, exc: PhoneError) -> None:
        event(
            log,
            "phone_request_failed",
            logging.WARNING,
            mac=target.mac,
            address=target.address,
            method=method,
            path=path,
            reason=exc.reason,
            status=exc.status,
            http=exc.http,
        )


def _authorization(auth: _Auth, password: str, method: str, path: str) -> tuple[str, _Auth]:
    """The header for the next request and the state after it (the Digest nonce count)."""
    if auth.scheme == "digest" and auth.challenge is not None:
        nc = auth.nc + 1
        try:
            header = digest.authorization(
                auth.challenge,
                user=USER,
                password=password,
                method=method,
                uri=path,
                nc=nc,
                # RFC 7616 section 3.4: the cnonce must be unpredictable, so not injected.
                cnonce=secrets.token_hex(16),
            )
        except digest.DigestError as exc:
            raise PhoneError(f"cannot authenticate: {exc}") from None
        return header, _Auth("digest", auth.challenge, nc)
    token = base64.b64encode(f"{USER}:{password}".encode()).decode("ascii")
    return f"Basic {token}", _Auth("basic")


def _after_401(auth: _Auth, headers: tuple[str, ...], *, fresh: bool) -> _Auth | None:
    """The state to retry with after a 401, or None when retrying cannot help.

    `fresh` says the refused Digest answer was to a challenge received during this
    request; a refused answer to a remembered nonce only means it expired.
    """
    challenges: list[digest.Challenge] = []
    for header in headers:
        try:
            challenges += digest.parse_challenges(header)
        except digest.DigestError:
            continue
    offered = tuple(challenges)
    wanted = digest.find(offered, "digest")
    if wanted is not None:
        if auth.scheme == "basic" or wanted.stale or not fresh:
            return _Auth("digest", wanted, 0)
        return None
    if auth.scheme == "digest" and digest.find(offered, "basic") is not None:
        return _Auth("basic")
    return None


async def _read_at_most(response: aiohttp.ClientResponse, limit: int) -> bytes:
    """The body, refusing more than `limit` bytes before reading them all."""
    body = await read_capped(response, limit)
    if body is None:
        raise PhoneError(f"bad answer from the phone: more than {limit} bytes")
    return body


def _why(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text if len(text) <= 200 else text[:197] + "..."
