"""The relay's FTP and FTPS frontend against a real cloud, driven by curl and lftp.

The cloud is the embedded control plane with its provisioning service (HTTPS,
lab CA) on a loopback port and a relay registered with it through the REST API,
as `relay up` does; the frontend relays to it with that relay's credential.
Every request the provisioning service receives is recorded, so a test can tell
what reached the cloud. One test puts a stub in the cloud's place, to break off
a download. A missing client program skips its test, naming the package that
provides it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import re
import shutil
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiohttp import web

from certs.lab import ServerIdentity, ensure_lab_identity
from certs.tls import client_context, server_context
from management_agent.link import register
from relay import __version__
from relay.cloud.api.phones import PhoneService, build_phone_app
from relay.cloud.api.routes import build_app
from relay.cloud.controlplane import CloudWorker, ControlPlane
from relay.cloud.rules.files import MAX_OVERRIDE_BYTES
from relay.frontend.firmware import PublishedImages
from relay.frontend.ftp import FtpFrontend
from relay.frontend.upstream import Upstream
from relay.sync.messages import Registration
from tests.frontend.published import publish
from tests.ports import free_port

MAC = "0004f2a1b2c3"
USER = "phones"
PASSWORD = "s3cret-provisioning"
FACTORY = ("PlcmSpIp", "PlcmSpIp")
CLIENT_TIMEOUT = 60.0


@dataclass(frozen=True)
class Seen:
    """One request the provisioning service received."""

    method: str
    path: str
    transport: str | None
    forwarded_for: str | None
    from_relay: bool


@dataclass
class Cloud:
    """The control plane, its REST API and its HTTPS provisioning service."""

    plane: ControlPlane
    worker: CloudWorker
    identity: ServerIdentity
    api: str
    prov_port: int
    requests: list[Seen] = field(default_factory=list)
    _runner: web.AppRunner | None = None

    @property
    def provisioning(self) -> str:
        return f"https://127.0.0.1:{self.prov_port}/"

    async def start_provisioning(self) -> None:
        """(Re)start the provisioning service, on the same port every time."""

        @web.middleware
        async def record(request: web.Request, handler: Handler) -> web.StreamResponse:
            headers = request.headers
            self.requests.append(
                Seen(
                    request.method,
                    request.path,
                    headers.get("X-Phone-Transport"),
                    headers.get("X-Forwarded-For"),
                    "X-Relay-Authorization" in headers,
                )
            )
            return await handler(request)

        app = build_phone_app(PhoneService(self.worker))
        app.middlewares.append(record)
        runner = web.AppRunner(app, access_log=None, handle_signals=False, lingering_time=0)
        await runner.setup()
        site = web.TCPSite(
            runner, "127.0.0.1", self.prov_port, ssl_context=server_context(self.identity)
        )
        await site.start()
        self._runner = runner

    async def stop_provisioning(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@contextlib.asynccontextmanager
async def running_cloud(directory: Path) -> AsyncIterator[Cloud]:
    plane = ControlPlane(directory / "cloud")
    worker = CloudWorker(plane)
    api_runner = web.AppRunner(
        build_app(worker, 20 * 1024 * 1024), access_log=None, handle_signals=False
    )
    cloud: Cloud | None = None
    try:
        await worker.call(plane.bootstrap)
        account = {"provisioning_account": {"user": USER, "password": PASSWORD}}
        await worker.call(plane.tenancy.update, account, "test")
        identity = ensure_lab_identity(directory / "tls", ["localhost"], ["127.0.0.1"])
        await api_runner.setup()
        await web.TCPSite(api_runner, "127.0.0.1", 0).start()
        api = f"http://127.0.0.1:{api_runner.addresses[0][1]}/api/v1"
        cloud = Cloud(plane, worker, identity, api, free_port())
        await cloud.start_provisioning()
        yield cloud
    finally:
        if cloud is not None:
            await cloud.stop_provisioning()
        await api_runner.cleanup()
        worker.close()
        # The provisioning service reads files through the default executor.
        await asyncio.get_running_loop().shutdown_default_executor()


@dataclass
class Ran:
    returncode: int
    stdout: str
    stderr: str


@dataclass
class Rig:
    """A cloud, a registered relay's FTP frontend in front of it, and client helpers."""

    cloud: Cloud
    ftp: FtpFrontend
    images: Path
    workdir: Path
    _count: int = 0

    @property
    def port(self) -> int:
        return self.ftp.address[1]

    @property
    def ca(self) -> str:
        return str(self.cloud.identity.ca_cert)

    def url(self, path: str) -> str:
        return f"ftp://127.0.0.1:{self.port}/{path.lstrip('/')}"

    def file(self, name: str) -> Path:
        self._count += 1
        return self.workdir / f"{self._count}-{name}"

    async def curl(
        self, *args: str, auth: tuple[str, str] | None = (USER, PASSWORD), tls: bool = False
    ) -> Ran:
        command = [need("curl", "curl"), "--silent", "--show-error", "--max-time", "30"]
        if auth is not None:
            command += ["--user", f"{auth[0]}:{auth[1]}"]
        if tls:
            command += ["--ssl-reqd", "--cacert", self.ca]
        return await run(*command, *args)

    async def lftp(self, *commands: str, auth: tuple[str, str] = (USER, PASSWORD)) -> Ran:
        script = "; ".join(
            (
                f"set ssl:ca-file {self.ca}",
                "set ftp:ssl-force true",
                "set ftp:ssl-protect-data true",
                "set net:max-retries 1",
                "set net:timeout 20",
                "set cmd:fail-exit true",
                *commands,
                "bye",
            )
        )
        return await run(
            need("lftp", "lftp"),
            "-u",
            f"{auth[0]},{auth[1]}",
            "-p",
            str(self.port),
            "-e",
            script,
            "127.0.0.1",
        )

    async def https(self, path: str) -> bytes:
        """What the cloud's own HTTPS service answers for `path`, as a phone asking directly."""
        out = self.file("https")
        ran = await run(
            need("curl", "curl"),
            "--silent",
            "--show-error",
            "--fail",
            "--cacert",
            self.ca,
            "--user",
            f"{USER}:{PASSWORD}",
            "-A",
            "",
            "-o",
            str(out),
            self.cloud.provisioning + path.lstrip("/"),
        )
        assert ran.returncode == 0, ran.stderr
        return out.read_bytes()


def need(program: str, package: str) -> str:
    path = shutil.which(program)
    if path is None:
        pytest.skip(f"{program} not installed (apt-get install {package})")
    return path


async def run(*command: str) -> Ran:
    process = await asyncio.create_subprocess_exec(
        *command,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), CLIENT_TIMEOUT)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    return Ran(
        process.returncode or 0, out.decode("utf-8", "replace"), err.decode("utf-8", "replace")
    )


@contextlib.asynccontextmanager
async def rigged(directory: Path, **options: object) -> AsyncIterator[Rig]:
    async with running_cloud(directory) as cloud:
        plane = cloud.plane
        relay = await register(
            cloud.api,
            Registration(
                plane.tenancy.tenant()["id"],
                (await cloud.worker.call(plane.relays.pin))["pin"],
                "ftp-test",
                __version__,
                ("127.0.0.1",),
            ),
        )
        upstream = Upstream(
            cloud.provisioning,
            relay.relay_id,
            relay.secret,
            tls=client_context(cloud.identity.ca_cert),
        )
        images = directory / "images"
        images.mkdir()
        ftp = FtpFrontend(
            "127.0.0.1",
            0,
            upstream,
            PublishedImages(images),
            tls=server_context(cloud.identity),
            **options,  # type: ignore[arg-type]
        )
        workdir = directory / "work"
        workdir.mkdir()
        await ftp.start()
        try:
            yield Rig(cloud, ftp, images, workdir)
        finally:
            await ftp.close()
            await upstream.aclose()


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    async with rigged(tmp_path) as running:
        yield running


def events(caplog: pytest.LogCaptureFixture, name: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.getMessage() == name]


def fields(record: logging.LogRecord) -> dict[str, object]:
    value = getattr(record, "fields", {})
    assert isinstance(value, dict)
    return value


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# -- reads ----------------------------------------------------------------------------


async def test_curl_gets_the_default_master_the_cloud_serves(rig: Rig) -> None:
    out = rig.file("master")
    ran = await rig.curl("-o", str(out), rig.url("000000000000.cfg"))
    assert ran.returncode == 0, ran.stderr
    assert out.read_bytes() == await rig.https("000000000000.cfg")


async def test_curl_gets_a_phone_master_the_cloud_serves(rig: Rig) -> None:
    out = rig.file("master")
    ran = await rig.curl("-o", str(out), rig.url(f"{MAC}.cfg"))
    assert ran.returncode == 0, ran.stderr
    assert out.read_bytes() == await rig.https(f"{MAC}.cfg")


async def test_curl_over_explicit_ftps_gets_the_master_the_cloud_serves(rig: Rig) -> None:
    out = rig.file("master")
    ran = await rig.curl("-o", str(out), rig.url(f"{MAC}.cfg"), tls=True)
    assert ran.returncode == 0, ran.stderr
    assert out.read_bytes() == await rig.https(f"{MAC}.cfg")


async def test_ftps_with_a_clear_data_connection_gets_local_firmware_intact(rig: Rig) -> None:
    firmware = os.urandom(2_000_000)
    publish(rig.images, firmware)
    out = rig.file("fw")
    ran = await rig.curl(
        "--ftp-ssl-control",
        "--cacert",
        rig.ca,
        "-o",
        str(out),
        rig.url("3111-46157-001.sip.ld"),
    )
    assert ran.returncode == 0, ran.stderr
    assert sha256(out.read_bytes()) == sha256(firmware)


async def test_requests_reach_the_cloud_as_the_relay_naming_the_phone_and_transport(
    rig: Rig,
) -> None:
    ran = await rig.curl("-o", str(rig.file("master")), rig.url(f"{MAC}.cfg"), tls=True)
    assert ran.returncode == 0, ran.stderr
    [seen] = [r for r in rig.cloud.requests if r.method == "GET"]
    assert seen == Seen("GET", f"/{MAC}.cfg", "ftps", "127.0.0.1", from_relay=True)


async def test_a_missing_file_is_550_and_no_warning(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, "relay.ftp")
    ran = await rig.curl("-o", str(rig.file("none")), rig.url(f"{MAC}-directory.xml"))
    assert ran.returncode == 78, ran.stderr  # RETR answered 550
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


async def test_firmware_in_the_image_directory_is_served_without_asking_the_cloud(
    rig: Rig,
) -> None:
    firmware = os.urandom(3_000_000)
    publish(rig.images, firmware)
    out = rig.file("fw")
    ran = await rig.curl("-o", str(out), rig.url("3111-46157-001.sip.ld"))
    assert ran.returncode == 0, ran.stderr
    assert sha256(out.read_bytes()) == sha256(firmware)
    assert not [r for r in rig.cloud.requests if r.path.endswith(".sip.ld")]


async def test_firmware_in_the_image_directory_is_served_over_ftps(rig: Rig) -> None:
    firmware = os.urandom(3_000_000)
    publish(rig.images, firmware)
    out = rig.file("fw")
    ran = await rig.curl("-o", str(out), rig.url("3111-46157-001.sip.ld"), tls=True)
    assert ran.returncode == 0, ran.stderr
    assert sha256(out.read_bytes()) == sha256(firmware)


async def put_resource(rig: Rig, name: str, data: bytes) -> None:
    files = rig.cloud.plane.files
    await rig.cloud.worker.call(files.put_resource, name, data, "test")


async def test_firmware_the_relay_lacks_is_streamed_from_the_cloud_intact(rig: Rig) -> None:
    firmware = os.urandom(6_000_000)
    await put_resource(rig, "relayed.sip.ld", firmware)
    out = rig.file("fw")
    ran = await rig.curl("-o", str(out), rig.url("relayed.sip.ld"))
    assert ran.returncode == 0, ran.stderr
    assert sha256(out.read_bytes()) == sha256(firmware)
    assert [r.method for r in rig.cloud.requests if r.path == "/relayed.sip.ld"][-1] == "GET"


async def test_firmware_streamed_from_the_cloud_over_ftps_is_intact(rig: Rig) -> None:
    firmware = os.urandom(6_000_000)
    await put_resource(rig, "relayed.sip.ld", firmware)
    out = rig.file("fw")
    ran = await rig.curl("-o", str(out), rig.url("relayed.sip.ld"), tls=True)
    assert ran.returncode == 0, ran.stderr
    assert sha256(out.read_bytes()) == sha256(firmware)


async def test_a_relayed_download_resumes_where_rest_says(rig: Rig) -> None:
    firmware = os.urandom(1_000_000)
    await put_resource(rig, "relayed.sip.ld", firmware)
    out = rig.file("fw")
    out.write_bytes(firmware[:123_456])
    ran = await rig.curl("-C", "-", "-o", str(out), rig.url("relayed.sip.ld"))
    assert ran.returncode == 0, ran.stderr
    assert sha256(out.read_bytes()) == sha256(firmware)


async def test_the_size_of_a_log_is_the_length_the_cloud_keeps_today(rig: Rig) -> None:
    log = rig.file("boot.log")
    log.write_bytes(b"booted\n" * 100)
    ran = await rig.curl("-T", str(log), rig.url(f"{MAC}-boot.log"))
    assert ran.returncode == 0, ran.stderr
    ran = await rig.curl("-I", rig.url(f"{MAC}-boot.log"))
    assert ran.returncode == 0, ran.stderr
    assert re.search(r"Content-Length: 700\b", ran.stdout), ran.stdout


# -- login ----------------------------------------------------------------------------


async def test_a_wrong_password_is_530_and_the_cloud_audits_the_phone(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "cloud.provisioning")
    ran = await rig.curl("-o", str(rig.file("x")), rig.url("000000000000.cfg"), auth=(USER, "no"))
    assert ran.returncode == 67, ran.stderr  # login denied
    assert "530" in ran.stderr
    [audit] = events(caplog, "auth_failed")
    assert fields(audit)["source"] == "127.0.0.1"


async def test_anonymous_is_530(rig: Rig) -> None:
    ran = await rig.curl("-o", str(rig.file("x")), rig.url("000000000000.cfg"), auth=None)
    assert ran.returncode == 67, ran.stderr
    assert "530" in ran.stderr


async def test_the_factory_account_is_530_when_the_tenant_chose_another(rig: Rig) -> None:
    ran = await rig.curl("-o", str(rig.file("x")), rig.url("000000000000.cfg"), auth=FACTORY)
    assert ran.returncode == 67, ran.stderr


# -- writes ---------------------------------------------------------------------------


def today_log(rig: Rig, name: str) -> bytes:
    files = rig.cloud.plane.files
    day = time.strftime("%Y-%m-%d", time.gmtime())
    return files.log_path(MAC, day, name).read_bytes()


async def test_lftp_over_ftps_gets_the_master_and_puts_a_log_the_cloud_keeps(rig: Rig) -> None:
    log = rig.file("app.log")
    log.write_bytes(b"registered line 1\n")
    out = rig.file("master")
    ran = await rig.lftp(
        f"get {MAC}.cfg -o {out}",
        f"put {log} -o {MAC}-app.log",
    )
    assert ran.returncode == 0, ran.stderr
    assert out.read_bytes() == await rig.https(f"{MAC}.cfg")
    assert today_log(rig, f"{MAC}-app.log") == b"registered line 1\n"


async def test_lftp_puts_an_override_file_the_cloud_then_serves(rig: Rig) -> None:
    override = rig.file("phone.cfg")
    override.write_bytes(
        b'<PHONE_CONFIG><OVERRIDES up.backlight.idleIntensity="1"/></PHONE_CONFIG>'
    )
    ran = await rig.lftp(f"put {override} -o {MAC}-phone.cfg")
    assert ran.returncode == 0, ran.stderr
    assert await rig.https(f"{MAC}-phone.cfg") == override.read_bytes()


async def test_appe_appends_to_the_days_log(rig: Rig) -> None:
    for line in (b"first\n", b"second\n"):
        part = rig.file("app.log")
        part.write_bytes(line)
        ran = await rig.curl("--append", "-T", str(part), rig.url(f"{MAC}-app.log"))
        assert ran.returncode == 0, ran.stderr
    assert today_log(rig, f"{MAC}-app.log") == b"first\nsecond\n"


async def test_stor_outside_the_upload_names_is_550_and_audited(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "relay.ftp")
    body = rig.file("evil.cfg")
    body.write_bytes(b"<polycomConfig/>")
    ran = await rig.curl("-T", str(body), rig.url("000000000000.cfg"))
    assert ran.returncode == 25, ran.stderr  # upload refused
    [refused] = events(caplog, "ftp_refused")
    assert refused.levelno == logging.WARNING
    assert fields(refused) | {"reason": ""} == {
        "source": "127.0.0.1",
        "command": "STOR",
        "path": "/000000000000.cfg",
        "reason": "",
        "audit": True,
    }
    assert not [r for r in rig.cloud.requests if r.method == "PUT"]


async def test_an_override_over_the_clouds_limit_is_552_and_not_stored(rig: Rig) -> None:
    body = rig.file("phone.cfg")
    body.write_bytes(b"x" * (MAX_OVERRIDE_BYTES + 1))
    ran = await rig.curl("-v", "-T", str(body), rig.url(f"{MAC}-phone.cfg"))
    assert ran.returncode != 0
    assert "< 552" in ran.stderr
    assert not [r for r in rig.cloud.requests if r.method == "PUT"]


async def test_dele_is_550_and_audited(rig: Rig, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "relay.ftp")
    ran = await rig.curl(
        "-Q", f"DELE {MAC}-boot.log", "-o", str(rig.file("x")), rig.url("000000000000.cfg")
    )
    assert ran.returncode == 21, ran.stderr  # the quoted command failed
    [refused] = events(caplog, "ftp_refused")
    assert (fields(refused)["command"], fields(refused)["audit"]) == ("DELE", True)


async def test_a_dotdot_name_is_refused_and_audited(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "relay.ftp")
    ran = await rig.curl(
        "--path-as-is",
        "--ftp-method",
        "nocwd",
        "-o",
        str(rig.file("x")),
        rig.url("../etc/passwd"),
    )
    assert ran.returncode == 78, ran.stderr  # RETR answered 550
    [refused] = events(caplog, "ftp_refused")
    assert fields(refused)["path"] == "../etc/passwd"
    assert fields(refused)["source"] == "127.0.0.1"
    assert not [r for r in rig.cloud.requests if "passwd" in r.path]


async def test_a_dotdot_directory_is_refused_and_audited(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "relay.ftp")
    ran = await rig.curl("--path-as-is", "-o", str(rig.file("x")), rig.url("../etc/passwd"))
    assert ran.returncode == 9, ran.stderr  # CWD refused
    [refused] = events(caplog, "ftp_refused")
    assert (fields(refused)["command"], fields(refused)["path"]) == ("CWD", "..")


async def test_a_listing_is_550(rig: Rig) -> None:
    ran = await rig.curl(rig.url("/"))
    assert ran.returncode == 19, ran.stderr  # LIST answered 550


# -- the cloud goes away ----------------------------------------------------------------


class Control:
    """A raw FTP control connection, for what the clients cannot be made to do."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    async def reply(self) -> str:
        """The next reply's last line (RFC 959 section 4.2: `ddd text`)."""
        while True:
            line = (await asyncio.wait_for(self.reader.readline(), 20)).decode()
            if not line or re.match(r"\d{3} ", line):
                return line.rstrip("\r\n")

    async def send(self, line: str) -> str:
        self.writer.write(line.encode() + b"\r\n")
        await self.writer.drain()
        return await self.reply()

    async def closed_by_server(self) -> bool:
        """True when the server ends the connection (EOF, or a reset if input was unread),
        whatever it sent before."""
        with contextlib.suppress(ConnectionResetError):
            await asyncio.wait_for(self.reader.read(), 20)
        return self.reader.at_eof() or self.writer.is_closing()

    async def login(self) -> None:
        assert (await self.send(f"USER {USER}")).startswith("331")
        assert (await self.send(f"PASS {PASSWORD}")).startswith("230")


@contextlib.asynccontextmanager
async def control(rig: Rig) -> AsyncIterator[Control]:
    reader, writer = await asyncio.open_connection("127.0.0.1", rig.port)
    try:
        yield Control(reader, writer)
    finally:
        writer.close()
        with contextlib.suppress(ConnectionResetError):
            await writer.wait_closed()


async def test_a_stopped_cloud_gives_421_logged_once_and_recovers(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "relay.upstream")
    await rig.cloud.stop_provisioning()
    for _ in range(3):
        ran = await rig.curl("-v", "-o", str(rig.file("x")), rig.url("000000000000.cfg"))
        assert ran.returncode != 0
        assert "< 421 Service not available, try again later." in ran.stderr
    assert len(events(caplog, "cloud_unreachable")) == 1
    await rig.cloud.start_provisioning()
    ran = await rig.curl("-o", str(rig.file("x")), rig.url("000000000000.cfg"))
    assert ran.returncode == 0, ran.stderr
    assert len(events(caplog, "cloud_reachable_again")) == 1


async def test_a_read_while_the_cloud_is_down_is_451(rig: Rig) -> None:
    async with control(rig) as session:
        assert (await session.reply()).startswith("220")
        await session.login()
        await rig.cloud.stop_provisioning()
        assert (await session.send("SIZE 000000000000.cfg")).startswith("451 ")


async def test_a_failed_tls_handshake_ends_only_that_session(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "relay.ftp")
    async with control(rig) as session:
        assert (await session.reply()).startswith("220")
        assert (await session.send("AUTH TLS")).startswith("234")
        session.writer.write(b"this is not a TLS ClientHello\r\n" * 4)
        await session.writer.drain()
        assert await session.closed_by_server()
    [failed] = events(caplog, "ftps_handshake_failed")
    assert fields(failed)["source"] == "127.0.0.1"
    ran = await rig.curl("-o", str(rig.file("x")), rig.url("000000000000.cfg"), tls=True)
    assert ran.returncode == 0, ran.stderr


# -- bounds and lifecycle -----------------------------------------------------------------


async def test_a_connection_over_max_connections_gets_421(tmp_path: Path) -> None:
    async with rigged(tmp_path, max_connections=1) as rig, control(rig) as first:
        assert (await first.reply()).startswith("220")
        async with control(rig) as second:
            assert (await second.reply()).startswith("421")


async def test_close_ends_open_sessions(rig: Rig) -> None:
    async with control(rig) as session:
        assert (await session.reply()).startswith("220")
        await session.login()
        await rig.ftp.close()
        assert await session.closed_by_server()


async def test_close_ends_a_session_waiting_to_refuse_a_login(
    rig: Rig, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "relay.ftp")
    async with control(rig) as session:
        assert (await session.reply()).startswith("220")
        assert (await session.send(f"USER {USER}")).startswith("331")
        session.writer.write(b"PASS wrong\r\n")
        # The cloud refused it: the 530 is now held back for auth_failed_timeout.
        for _ in range(1000):
            if events(caplog, "ftp_login_failed"):
                break
            await asyncio.sleep(0.01)
        await rig.ftp.close()
        assert await session.closed_by_server()


async def test_passive_ports_come_from_the_configured_range(tmp_path: Path) -> None:
    port = free_port()
    async with rigged(tmp_path, passive_ports=range(port, port + 1)) as rig:
        ran = await rig.curl("-v", "-o", str(rig.file("x")), rig.url("000000000000.cfg"))
    assert ran.returncode == 0, ran.stderr
    assert f"(|||{port}|)" in ran.stderr


# -- a cloud that breaks off --------------------------------------------------------------


async def breaking_cloud(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Minimal HTTP/1.1: every HEAD is 200 (the login passes); a GET announces 10 MB and
    sends 1 MB before hanging up."""
    head = await reader.readuntil(b"\r\n\r\n")
    size = 10_000_000
    answer = f"HTTP/1.1 200 OK\r\nContent-Length: {size}\r\nConnection: close\r\n\r\n"
    writer.write(answer.encode())
    if head.startswith(b"GET "):
        writer.write(b"x" * 1_000_000)
    await writer.drain()
    writer.close()
    await writer.wait_closed()


async def test_a_transfer_the_cloud_breaks_off_is_cut_and_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "relay.ftp")
    server = await asyncio.start_server(breaking_cloud, "127.0.0.1", 0)
    upstream = Upstream(f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/", "r1", "s1")
    ftp = FtpFrontend("127.0.0.1", 0, upstream, PublishedImages(tmp_path))
    await ftp.start()
    try:
        ran = await run(
            need("curl", "curl"),
            "-sS",
            "-v",
            "--user",
            f"{USER}:{PASSWORD}",
            "-o",
            str(tmp_path / "out"),
            f"ftp://127.0.0.1:{ftp.address[1]}/broken.sip.ld",
        )
    finally:
        await ftp.close()
        await upstream.aclose()
        server.close()
        await server.wait_closed()
    assert ran.returncode == 18, ran.stderr  # a partial file: curl knew the size (SIZE)
    assert len(events(caplog, "ftp_transfer_broken")) == 1
    [transfer] = events(caplog, "ftp_transfer")
    assert (fields(transfer)["origin"], fields(transfer)["completed"]) == ("cloud", False)
