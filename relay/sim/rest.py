"""The simulated phone's HTTPS web server: REST API and /captureScreen (phones.md section 4).

A thin adapter: TLS, authentication (Basic or Digest by model), the
one-request-at-a-time rule and the processing time live here; what each
request does is relay.sim.restate. The order of checks, which phones.md
leaves open:
1. a request arriving while another is processed gets HTTP 403 at once;
2. `/api` paths answer HTTP 404 unless `apps.restapi.enabled` is "1"
   (a phone that was never provisioned has the API off, its factory default);
3. wrong or missing credentials get HTTP 401 with the model's challenge;
4. bodies over MAX_BODY get HTTP 413;
5. the request takes `processing` seconds of the phone's clock, then
   RestState answers (4010 while the admin password is the factory "456",
   4001 while busy, then the endpoint).
/captureScreen needs the same credentials, is not subject to 4010 or busy,
and answers a PNG only when `up.screenCapture.enabled` is "1", else 403.

All simulated phones share one self-signed ECDSA P-256 certificate, made once
per process (phones ship self-signed certificates; clients do not verify them).
"""

from __future__ import annotations

import datetime
import functools
import ipaddress
import json
import ssl
import struct
import tempfile
import zlib
from collections.abc import Callable
from pathlib import Path

from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from relay.sim.clock import Clock
from relay.sim.httpauth import DigestVerifier, basic_challenge, check_basic
from relay.sim.layers import REST_ENABLED, SCREEN_CAPTURE
from relay.sim.restate import DeviceFacts, RestRecord, RestReply, RestState

MAX_BODY = 64 * 1024
SHUTDOWN_SECONDS = 0.5
SCREEN_SIZE = (64, 32)


@functools.cache
def certificate_pem() -> tuple[bytes, bytes]:
    """(certificate, private key) PEM of the one self-signed certificate all sim phones use."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Polycom simulated phone")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=3650))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("polycom-sim"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return certificate.public_bytes(serialization.Encoding.PEM), key_pem


@functools.cache
def server_context() -> ssl.SSLContext:
    """TLS 1.2 or newer with the shared certificate; loaded from files deleted at once."""
    cert, key = certificate_pem()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    with tempfile.TemporaryDirectory(prefix="relay-sim-tls-") as directory:
        cert_file, key_file = Path(directory, "cert.pem"), Path(directory, "key.pem")
        cert_file.write_bytes(cert)
        key_file.write_bytes(key)
        context.load_cert_chain(cert_file, key_file)
    return context


def screen_png(width: int = SCREEN_SIZE[0], height: int = SCREEN_SIZE[1]) -> bytes:
    """A small valid greyscale PNG standing in for the phone's screen."""
    rows = b"".join(
        b"\x00" + bytes((x * 4 + y * 8) % 256 for x in range(width)) for y in range(height)
    )

    def chunk(kind: bytes, data: bytes) -> bytes:
        checksum = zlib.crc32(kind + data)
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", checksum)

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


class PhoneWebServer:
    """One phone's HTTPS listener; `start()` after boot, `close()` to go offline."""

    def __init__(
        self,
        state: RestState,
        *,
        scheme: str,
        clock: Clock,
        processing: float,
        facts: Callable[[], DeviceFacts],
        on_action: Callable[[str], None],
        on_record: Callable[[RestRecord], None],
    ) -> None:
        if scheme not in ("basic", "digest"):
            raise ValueError(f"auth scheme {scheme!r} is neither basic nor digest")
        self._state = state
        self._scheme = scheme
        self._clock = clock
        self._processing = processing
        self._facts = facts
        self._on_action = on_action
        self._on_record = on_record
        self._digest = DigestVerifier()
        self._in_flight = False
        self._runner: web.AppRunner | None = None

    async def start(self, host: str, port: int) -> int:
        """Listen on host:port (0 picks a port); returns the port."""
        app = web.Application(client_max_size=MAX_BODY)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        runner = web.AppRunner(
            app, access_log=None, handle_signals=False, shutdown_timeout=SHUTDOWN_SECONDS
        )
        await runner.setup()
        try:
            site = web.TCPSite(
                runner,
                host,
                port,
                ssl_context=server_context(),
                reuse_address=True,
            )
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        address = runner.addresses[0]
        return int(address[1])

    async def close(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
        self._in_flight = False

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        response, status = await self._respond(request)
        self._on_record(
            RestRecord(request.method, request.path, response.status, status, self._clock.time())
        )
        return response

    async def _respond(self, request: web.Request) -> tuple[web.Response, str | None]:
        """The response and its API Status (None when the request never reached the API)."""
        if self._in_flight:
            return web.Response(status=403, text="one request at a time\n"), None
        is_api = request.path.startswith("/api/")
        if is_api and not self._state.settings.enabled(REST_ENABLED):
            return web.Response(status=404, text="REST API disabled\n"), None
        if not self._authorized(request):
            return self._challenge(), None
        if request.content_length is not None and request.content_length > MAX_BODY:
            return web.Response(status=413), None
        self._in_flight = True
        try:
            try:
                body = await request.read()
            except web.HTTPRequestEntityTooLarge:
                return web.Response(status=413), None
            await self._clock.sleep(self._processing)
            if not is_api:
                return self._web_page(request), None
            reply = self._state.answer(
                request.method, request.path, body, self._facts(), self._clock.time()
            )
        finally:
            self._in_flight = False
        if reply.action is not None:
            self._on_action(reply.action)
        return _json(reply), reply.status

    def _web_page(self, request: web.Request) -> web.Response:
        if request.path != "/captureScreen" or request.method != "GET":
            return web.Response(status=404)
        if not self._state.settings.enabled(SCREEN_CAPTURE):
            return web.Response(status=403, text="screen capture is disabled\n")
        return web.Response(body=screen_png(), content_type="image/png")

    def _authorized(self, request: web.Request) -> bool:
        password = self._state.settings.admin_password
        header = request.headers.get("Authorization")
        if self._scheme == "basic":
            return check_basic(header, password)
        return self._digest.check(header, request.method, request.raw_path, password)

    def _challenge(self) -> web.Response:
        challenge = basic_challenge() if self._scheme == "basic" else self._digest.challenge()
        return web.Response(status=401, headers={"WWW-Authenticate": challenge})


def _json(reply: RestReply) -> web.Response:
    return web.Response(
        status=reply.http_status,
        text=json.dumps(reply.payload),
        content_type="application/json",
    )
