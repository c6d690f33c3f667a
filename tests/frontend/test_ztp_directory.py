"""The relay's ZTP directory: synced from a real control plane over loopback, kept on
disk 0600, answering phones from the last good copy while the cloud is away and
after a restart (phones.md section 1 item 5; docs/agent-link.md "ZTP directory")."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from management_agent.agent import CREDENTIAL_FILE
from management_agent.link import register
from management_agent.ztpfeed import ZtpFeed
from relay.cloud.api.routes import build_app
from relay.cloud.controlplane import CloudWorker, ControlPlane
from relay.cloud.rules.ztp import ZtpAnswer
from relay.frontend.ztp import ZtpDirectory, ZtpSyncError, ztp_routes
from relay.sync.messages import Registration
from tests.ports import free_port

MAC = "0004f23ea4e1"
OTHER_MAC = "64167f000002"
PASSWORD = "Pr0v-s3cret"
ANSWER = ZtpAnswer(MAC, "https://prov.example.com/phones", "phones", PASSWORD)


@dataclass
class Cloud:
    """A control plane serving its API on a fixed loopback port (the relay's credential
    names it); `stop()` closes the listener and every connection, as an outage does."""

    plane: ControlPlane
    worker: CloudWorker
    port: int
    runner: web.AppRunner | None = None
    profiles: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        app = build_app(self.worker, 1024 * 1024)
        self.runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self.runner.setup()
        await web.TCPSite(self.runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()
            self.runner = None

    async def assign(self, mac: str, url: str = ANSWER.url) -> None:
        """Through the partner API's service, on the plane's worker thread."""
        ztp = self.plane.ztp
        tenant = (await self.worker.call(self.plane.tenancy.tenant))["id"]
        if url not in self.profiles:
            body = {"name": f"p{len(self.profiles)}", "url": url, "user": "phones"}
            created = await self.worker.call(
                ztp.create_profile, tenant, {**body, "password": PASSWORD}, "test"
            )
            self.profiles[url] = created["id"]
        await self.worker.call(
            ztp.assign, tenant, {"id": mac, "profile": self.profiles[url]}, "test"
        )


@pytest.fixture(autouse=True)
async def default_executor() -> AsyncIterator[None]:
    """The directory checks and saves a fetched copy on the loop's default executor;
    join its threads, as `relay up` does at exit."""
    yield
    await asyncio.get_running_loop().shutdown_default_executor()


@pytest.fixture
async def cloud(tmp_path: Path) -> AsyncIterator[Cloud]:
    plane = ControlPlane(tmp_path / "cloud")
    plane.bootstrap()
    worker = CloudWorker(plane)
    cloud = Cloud(plane, worker, free_port())
    try:
        await cloud.start()
        yield cloud
    finally:
        await cloud.stop()
        worker.close()


@pytest.fixture
async def credential(cloud: Cloud, tmp_path: Path) -> Path:
    """The relay's registration, saved where the agent keeps it."""
    tenant = (await cloud.worker.call(cloud.plane.tenancy.tenant))["id"]
    pin = (await cloud.worker.call(cloud.plane.relays.pin))["pin"]
    identity = await register(cloud.url, Registration(tenant, pin, "relay-1", "1.0"))
    path = tmp_path / "agent" / CREDENTIAL_FILE
    identity.save(path)
    return path


@pytest.fixture
async def client(credential: Path) -> AsyncIterator[ZtpFeed]:
    feed = ZtpFeed(credential)
    yield feed
    await feed.aclose()


@pytest.fixture
def copy_path(tmp_path: Path) -> Path:
    return tmp_path / "relay" / "ztp.json"


class Rounds:
    """An injected `sleep` for `run()`: it counts rounds and lets the next one start only
    when the test says so, so the test sees each round's effect without timing."""

    def __init__(self) -> None:
        self.count = 0
        self._changed = asyncio.Condition()
        self._permits: asyncio.Queue[None] = asyncio.Queue()

    async def sleep(self, _seconds: float) -> None:
        async with self._changed:
            self.count += 1
            self._changed.notify_all()
        await self._permits.get()

    async def reach(self, count: int) -> None:
        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(lambda: self.count >= count), 30)

    async def another(self) -> None:
        """Let one more round run and wait until it is over."""
        target = self.count + 1
        self._permits.put_nowait(None)
        await self.reach(target)


def owner_only_and_whole(path: Path) -> bool:
    """Mode 0600, and no temporary file left beside it."""
    leftover = path.with_name(path.name + ".tmp").exists()
    return path.stat().st_mode & 0o777 == 0o600 and not leftover


def events(caplog: pytest.LogCaptureFixture, name: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "relay.ztp" and r.getMessage() == name]


async def test_a_sync_brings_the_cloud_directory_to_the_relay(
    cloud: Cloud, client: ZtpFeed, copy_path: Path
) -> None:
    await cloud.assign(MAC)
    directory = ZtpDirectory(copy_path)
    assert await directory.sync(client)
    assert directory.lookup(MAC) == ANSWER
    assert directory.lookup(OTHER_MAC) is None


async def test_an_unchanged_directory_is_answered_304_and_kept(
    cloud: Cloud, client: ZtpFeed, copy_path: Path
) -> None:
    await cloud.assign(MAC)
    directory = ZtpDirectory(copy_path)
    await directory.sync(client)
    assert not await directory.sync(client)
    assert directory.lookup(MAC) == ANSWER


async def test_a_change_in_the_cloud_arrives_at_the_next_sync(
    cloud: Cloud, client: ZtpFeed, copy_path: Path
) -> None:
    directory = ZtpDirectory(copy_path)
    await directory.sync(client)
    before = directory.version
    await cloud.assign(OTHER_MAC, "tftp://192.0.2.10")
    assert await directory.sync(client)
    assert directory.version > before
    answer = directory.lookup(OTHER_MAC)
    assert answer is not None and answer.url == "tftp://192.0.2.10"


async def test_the_saved_copy_is_readable_by_its_owner_only(
    cloud: Cloud, client: ZtpFeed, copy_path: Path
) -> None:
    await cloud.assign(MAC)
    await ZtpDirectory(copy_path).sync(client)
    assert owner_only_and_whole(copy_path)


async def test_a_restarted_relay_answers_from_its_saved_copy_with_the_cloud_down(
    cloud: Cloud, client: ZtpFeed, copy_path: Path
) -> None:
    await cloud.assign(MAC)
    await ZtpDirectory(copy_path).sync(client)
    await cloud.stop()
    restarted = ZtpDirectory(copy_path)
    assert restarted.load()
    assert restarted.lookup(MAC) == ANSWER


async def test_a_restarted_relay_asks_only_for_changes(
    cloud: Cloud, client: ZtpFeed, copy_path: Path
) -> None:
    await cloud.assign(MAC)
    await ZtpDirectory(copy_path).sync(client)
    restarted = ZtpDirectory(copy_path)
    restarted.load()
    assert not await restarted.sync(client)


async def test_with_the_cloud_down_a_sync_fails_and_the_copy_still_answers(
    cloud: Cloud, client: ZtpFeed, copy_path: Path
) -> None:
    await cloud.assign(MAC)
    directory = ZtpDirectory(copy_path)
    await directory.sync(client)
    await cloud.stop()
    with pytest.raises(ZtpSyncError):
        await directory.sync(client)
    assert directory.lookup(MAC) == ANSWER


def test_a_damaged_copy_is_ignored_and_logged(
    copy_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    copy_path.parent.mkdir(parents=True)
    copy_path.write_text('{"etag": "x", "directory": {"version": 1, "devices": []}}')
    directory = ZtpDirectory(copy_path)
    assert not directory.load()
    assert directory.lookup(MAC) is None
    assert events(caplog, "ztp_copy_damaged")


def test_without_a_saved_copy_the_directory_starts_empty(copy_path: Path) -> None:
    directory = ZtpDirectory(copy_path)
    assert not directory.load()
    assert directory.size == 0


async def test_run_logs_an_outage_once_and_the_recovery_once(
    cloud: Cloud, client: ZtpFeed, copy_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "relay.ztp")
    await cloud.assign(MAC)
    directory = ZtpDirectory(copy_path)
    rounds = Rounds()
    task = asyncio.create_task(directory.run(client, 60.0, sleep=rounds.sleep))
    try:
        await rounds.reach(1)
        assert directory.lookup(MAC) == ANSWER
        await cloud.stop()
        for _ in range(3):
            await rounds.another()
        assert len(events(caplog, "ztp_sync_down")) == 1
        assert directory.lookup(MAC) == ANSWER
        await cloud.start()
        await cloud.assign(OTHER_MAC)
        for _ in range(2):
            await rounds.another()
        assert len(events(caplog, "ztp_sync_recovered")) == 1
        assert directory.lookup(OTHER_MAC) is not None
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_run_without_a_credential_keeps_answering_and_says_why(
    copy_path: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    directory = ZtpDirectory(copy_path)
    rounds = Rounds()
    feed = ZtpFeed(tmp_path / "none.json")
    task = asyncio.create_task(directory.run(feed, 60.0, sleep=rounds.sleep))
    try:
        await rounds.reach(1)
        (down,) = events(caplog, "ztp_sync_down")
        assert "relay agent register" in str(down.__dict__["fields"]["error"])
    finally:
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_no_password_is_logged_while_syncing_and_answering(
    cloud: Cloud, client: ZtpFeed, copy_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    await cloud.assign(MAC)
    directory = ZtpDirectory(copy_path)
    await directory.sync(client)
    async with (
        PhoneFacing(directory) as base,
        aiohttp.ClientSession() as session,
        session.get(f"{base}/ztp/v1/devices/{MAC}") as resp,
    ):
        assert resp.status == 200
    logged = " ".join(f"{r.getMessage()} {r.__dict__.get('fields')}" for r in caplog.records)
    assert "ztp_lookup" in logged
    assert PASSWORD not in logged


# -- the phone-facing lookup -------------------------------------------------------------


class PhoneFacing:
    """`ztp_routes` mounted on an aiohttp app on a loopback port."""

    def __init__(self, directory: ZtpDirectory) -> None:
        app = web.Application()
        app.add_routes(ztp_routes(directory))
        self.runner = web.AppRunner(app, access_log=None, handle_signals=False)

    async def __aenter__(self) -> str:
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        return f"http://127.0.0.1:{self.runner.addresses[0][1]}"

    async def __aexit__(self, *_: object) -> None:
        await self.runner.cleanup()


async def ask(directory: ZtpDirectory, mac: str) -> tuple[int, Any]:
    async with (
        PhoneFacing(directory) as base,
        aiohttp.ClientSession() as session,
        session.get(f"{base}/ztp/v1/devices/{mac}") as resp,
    ):
        return resp.status, json.loads(await resp.read())


@pytest.fixture
def loaded(copy_path: Path) -> ZtpDirectory:
    """A saved copy with one phone, as a previous sync left it."""
    copy_path.parent.mkdir(parents=True)
    wire = {"version": 3, "devices": {MAC: ANSWER.to_wire()}}
    copy_path.write_text(json.dumps({"etag": '"t-3"', "directory": wire}))
    directory = ZtpDirectory(copy_path)
    assert directory.load()
    return directory


async def test_a_known_phone_gets_its_server_and_account(loaded: ZtpDirectory) -> None:
    status, body = await ask(loaded, "00:04:F2:3E:A4:E1")
    assert status == 200
    assert body == {"mac": MAC, **ANSWER.to_wire()}


async def test_an_unknown_phone_is_404(loaded: ZtpDirectory) -> None:
    status, body = await ask(loaded, OTHER_MAC)
    assert status == 404
    assert OTHER_MAC in body["error"]["message"]


@pytest.mark.parametrize("mac", ["nope", "0004f23ea4e", "00:04:f2:3e:a4:e1:ff"])
async def test_a_bad_mac_is_400(loaded: ZtpDirectory, mac: str) -> None:
    status, body = await ask(loaded, mac)
    assert status == 400
    assert body["error"]["code"] == "invalid_mac"
