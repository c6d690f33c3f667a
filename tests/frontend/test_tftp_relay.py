"""Phones provisioning over TFTP through the relay (issue 5), with real TFTP clients.

The embedded cloud runs for real (`relay up` in-process) and the relay is
registered to it with the tenant's PIN, as a relay in a branch office is; the
relay's TFTP server answers published firmware from its disk and relays the
rest to the cloud through a gate that the outage tests shut. A missing client
program skips its test, naming the package that provides it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from certs.tls import client_context
from management_agent.link import register
from relay import __version__
from relay.frontend.firmware import PublishedImages
from relay.frontend.tftp import TftpConfig, TftpServer
from relay.frontend.tftp_relay import TRY_AGAIN, TftpRelay
from relay.frontend.upstream import Upstream
from relay.proto.tftp.packet import (
    ACCESS_VIOLATION,
    FILE_NOT_FOUND,
    NOT_DEFINED,
    Error,
    build_request,
)
from relay.sync.messages import Registration
from tests.frontend.published import publish
from tests.frontend.tcpgate import TcpGate
from tests.frontend.test_tftp_server import error_for, need, run
from tests.phones.conftest import (
    MAC,
    Relay,
    RelayFactory,
    relay_up,  # noqa: F401 - the fixture
)

PART = "3111-44500-001"  # VVX500, phones.md section 3
PUBLISHED = f"{PART}.sip.ld"
FIRMWARE = bytes((i * 13 + 5) % 251 for i in range(400_003))
IMAGE = bytes((i * 7 + 3) % 251 for i in range(300_001))


@dataclass
class Relayed:
    """The cloud, the gate in front of it, the relay's TFTP server behind the gate."""

    cloud: Relay
    gate: TcpGate
    server: TftpServer
    images: Path
    spool: Path

    @property
    def port(self) -> int:
        return self.server.address[1]

    def url(self, name: str) -> str:
        return f"tftp://127.0.0.1:{self.port}/{name}"


@pytest.fixture
async def cloud(relay_up: RelayFactory) -> AsyncIterator[Relay]:  # noqa: F811
    async with relay_up() as running:
        yield running


@contextlib.asynccontextmanager
async def relaying(cloud: Relay, workdir: Path, **options: Any) -> AsyncIterator[Relayed]:
    """A relay registered to `cloud` with its PIN, its TFTP server on a free port."""
    facts = cloud.facts
    registration = Registration(
        str(facts["tenant"]), str(facts["pin"]), "tftp-relay-test", __version__, ("127.0.0.1",)
    )
    identity = await register(str(facts["api"]), registration)
    gate = TcpGate(("127.0.0.1", int(cloud.https.rstrip("/").rsplit(":", 1)[1])))
    await gate.open()
    upstream = Upstream(
        f"https://127.0.0.1:{gate.port}/",
        identity.relay_id,
        identity.secret,
        tls=client_context(Path(cloud.ca_cert)),
    )
    images, spool = workdir / "images", workdir / "spool"
    images.mkdir(parents=True)
    spool.mkdir()
    relay = TftpRelay(upstream, PublishedImages(images), spool_dir=spool, **options)
    try:
        async with TftpServer(relay.resolve, TftpConfig(host="127.0.0.1", port=0)) as server:
            yield Relayed(cloud, gate, server, images, spool)
    finally:
        await relay.aclose()
        await upstream.aclose()
        await gate.close()


@pytest.fixture
async def relayed(cloud: Relay, tmp_path: Path) -> AsyncIterator[Relayed]:
    async with relaying(cloud, tmp_path / "relay") as running:
        yield running


def read(path: Path) -> bytes:
    return path.read_bytes()


async def curl(url: str, out: Path) -> bytes:
    await run(need("curl", "curl"), "-sS", "--max-time", "30", "-o", str(out), url)
    return read(out)


async def atftp(relayed: Relayed, name: str, out: Path) -> bytes:
    await run(
        need("atftp", "atftp"),
        "--option",
        "blksize 1468",
        "--option",
        "windowsize 8",
        "-g",
        "-r",
        name,
        "-l",
        str(out),
        "127.0.0.1",
        str(relayed.port),
    )
    return read(out)


async def tftp_hpa(relayed: Relayed, name: str, out: Path) -> bytes:
    tftp = need("tftp", "tftp-hpa")
    process = await asyncio.create_subprocess_exec(
        tftp, "-V", stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    version, _ = await asyncio.wait_for(process.communicate(), 10)
    if b"tftp-hpa" not in version:
        pytest.skip("the tftp program is not tftp-hpa's (apt-get install tftp-hpa)")
    await run(tftp, "-m", "binary", "127.0.0.1", str(relayed.port), "-c", "get", name, str(out))
    return read(out)


async def upload_image(cloud: Relay) -> str:
    """An image in the cloud only (not published on the relay); its ID."""
    reply = await cloud.api.call(
        "POST",
        "/images",
        data=IMAGE,
        content_type="application/octet-stream",
        params={"model": "VVX", "version": "6.4.3", "filename": "sip.ld"},
    )
    assert reply.status == 201, reply.text
    return str(reply.body["id"])


def lines(caplog: pytest.LogCaptureFixture, message: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.getMessage() == message]


@pytest.mark.parametrize("name", [f"{MAC}.cfg", "000000000000.cfg"])
async def test_curl_gets_the_master_file_the_https_service_gives_the_same_phone(
    relayed: Relayed, tmp_path: Path, name: str
) -> None:
    through = await curl(relayed.url(name), tmp_path / "through")
    direct = await relayed.cloud.curl("GET", f"/{name}", user_agent="")

    assert direct.status == 200
    assert through == direct.body
    assert b"<APPLICATION" in through


async def test_tftp_hpa_gets_published_firmware_and_a_relayed_config(
    relayed: Relayed, tmp_path: Path
) -> None:
    publish(relayed.images, FIRMWARE)
    firmware = await tftp_hpa(relayed, PUBLISHED, tmp_path / "fw")
    config = await tftp_hpa(relayed, f"{MAC}.cfg", tmp_path / "cfg")
    direct = await relayed.cloud.curl("GET", f"/{MAC}.cfg", user_agent="")

    assert firmware == FIRMWARE
    assert config == direct.body


async def test_atftp_with_blksize_and_windowsize_gets_published_firmware_and_a_relayed_config(
    relayed: Relayed, tmp_path: Path
) -> None:
    publish(relayed.images, FIRMWARE)
    firmware = await atftp(relayed, PUBLISHED, tmp_path / "fw")
    config = await atftp(relayed, f"{MAC}.cfg", tmp_path / "cfg")
    direct = await relayed.cloud.curl("GET", f"/{MAC}.cfg", user_agent="")

    assert firmware == FIRMWARE
    assert config == direct.body


async def test_published_firmware_is_served_from_the_relays_disk_only(
    relayed: Relayed, tmp_path: Path
) -> None:
    publish(relayed.images, FIRMWARE)
    firmware = await curl(relayed.url(PUBLISHED), tmp_path / "fw")
    in_the_cloud = await relayed.cloud.curl("GET", f"/{PUBLISHED}", check=False)

    assert firmware == FIRMWARE
    assert in_the_cloud.status == 404


async def test_firmware_not_on_the_relay_is_relayed_from_the_cloud_and_not_kept(
    relayed: Relayed, tmp_path: Path
) -> None:
    image_id = await upload_image(relayed.cloud)
    firmware = await atftp(relayed, f"images/{image_id}/{PART}.sip.ld", tmp_path / "fw")

    assert firmware == IMAGE
    assert list(relayed.spool.iterdir()) == []  # an anonymous file: nothing named on disk


async def test_phones_asking_at_once_for_relayed_firmware_share_one_download(
    relayed: Relayed, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "relay.tftp")
    name = f"images/{await upload_image(relayed.cloud)}/{PART}.sip.ld"
    bodies = await asyncio.gather(*(atftp(relayed, name, tmp_path / f"fw{i}") for i in range(3)))

    assert bodies == [IMAGE] * 3
    assert len(lines(caplog, "tftp_firmware_relayed")) == 1


async def test_relayed_firmware_over_the_limit_is_refused(
    cloud: Relay, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "relay.tftp")
    name = f"images/{await upload_image(cloud)}/{PART}.sip.ld"
    async with relaying(cloud, tmp_path / "relay", firmware_limit=len(IMAGE) - 1) as relayed:
        error = await error_for(relayed.server, build_request(name))

    assert (error.code, error.message) == (NOT_DEFINED, "file too large")
    [declined] = lines(caplog, "tftp_declined")
    assert declined.levelno == logging.WARNING


async def test_a_name_the_cloud_does_not_have_is_file_not_found(relayed: Relayed) -> None:
    error = await error_for(relayed.server, build_request("000000000000-nothing-here.cfg"))

    assert error.code == FILE_NOT_FOUND


async def test_a_write_request_is_refused_as_read_only(relayed: Relayed) -> None:
    error = await error_for(relayed.server, build_request(f"{MAC}-app.log", write=True))

    assert (error.code, error.message) == (ACCESS_VIOLATION, "read-only server")


@pytest.mark.parametrize(
    "name", ["../etc/passwd", "/etc/passwd", "images/../../x.ld", "etc/passwd", "a\\b.cfg"]
)
async def test_names_outside_the_provisioning_names_are_refused_and_audited(
    relayed: Relayed, name: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "relay")
    error = await error_for(relayed.server, build_request(name))

    assert error.code == ACCESS_VIOLATION
    [refused] = lines(caplog, "tftp_refused")
    assert refused.levelno == logging.WARNING
    assert refused.__dict__["fields"]["audit"] is True
    assert refused.__dict__["fields"]["file"] == name
    assert lines(caplog, "tftp_declined") == []  # never relayed to the cloud


async def test_an_unreachable_cloud_gets_the_phone_a_retryable_error_0(relayed: Relayed) -> None:
    await relayed.gate.close()
    error = await error_for(relayed.server, build_request(f"{MAC}.cfg"))

    assert error == Error(NOT_DEFINED, TRY_AGAIN)


async def test_an_outage_is_logged_once_however_many_phones_ask(
    relayed: Relayed, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "relay")
    await relayed.gate.close()
    errors = [
        await error_for(relayed.server, build_request(name))
        for name in (f"{MAC}.cfg", "000000000000.cfg", f"{MAC}.cfg", f"{MAC}-profile.cfg")
    ]

    assert {error.code for error in errors} == {NOT_DEFINED}
    assert len(lines(caplog, "cloud_unreachable")) == 1
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == lines(
        caplog, "cloud_unreachable"
    )


async def test_the_relay_recovers_by_itself_when_the_cloud_is_back(
    relayed: Relayed, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "relay")
    await relayed.gate.close()
    error = await error_for(relayed.server, build_request(f"{MAC}.cfg"))
    await relayed.gate.open()
    config = await curl(relayed.url(f"{MAC}.cfg"), tmp_path / "cfg")

    assert error.code == NOT_DEFINED
    assert b"<APPLICATION" in config
    assert len(lines(caplog, "cloud_reachable_again")) == 1
