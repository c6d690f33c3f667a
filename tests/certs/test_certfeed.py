"""The certificate the cloud delivers, installed by the relay's feed (management_agent.
certfeed): `plan` on its own, then the feed against an in-test fake of the two agent
routes (`GET /api/v1/agent/certificate`, `PUT .../certificate/status`) on a real socket,
installing into a real ServingCertificate.

The fake stands in for relay/cloud/api/relaycerts.py, written in parallel; it answers as
docs/agent-link.md "Certificates" says: ETag and If-None-Match, 304, 404 when none is
assigned.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiohttp import web
from hypothesis import given, settings
from hypothesis import strategies as st

from certs.lab import ensure_lab_identity
from certs.rotation import Served, ServingCertificate, fingerprint
from management_agent.certfeed import CertFeed, Install, UseLab, plan
from management_agent.link import Identity
from relay.sync.certificates import CertificateState, RelayCertificate
from relay.sync.messages import SyncError
from tests.certs.pki import NOW, Chain, chain, key_pem, pem, rsa_key

RELAY = ("relay-1", "s3cret")


def delivered(c: Chain, etag: str = "v1") -> RelayCertificate:
    return RelayCertificate(
        etag=etag,
        chain_pem=pem(c.leaf.cert, c.intermediate.cert, c.root.cert).decode(),
        key_pem=key_pem(c.leaf.key).decode(),
        fingerprint=fingerprint(c.leaf.cert),
    )


def served(source: str, fp: str = "a" * 64) -> Served:
    return Served(fp, "CN=x", ("x",), (), datetime(2030, 1, 1, tzinfo=UTC), source, "")


def body(c: RelayCertificate) -> bytes:
    return json.dumps(c.to_wire()).encode()


def test_plan_does_nothing_while_the_etag_holds() -> None:
    assert plan(304, b"", served("installed")) is None


def test_plan_installs_a_newly_delivered_certificate() -> None:
    offered = delivered(chain())
    assert plan(200, body(offered), served("lab")) == Install(offered)


def test_plan_does_not_install_again_what_is_served() -> None:
    offered = delivered(chain())
    assert plan(200, body(offered), served("installed", offered.fingerprint)) is None


def test_plan_returns_to_the_lab_certificate_when_the_delivered_one_is_unassigned() -> None:
    assert plan(404, b"", served("installed", "b" * 64), "b" * 64) == UseLab()


def test_plan_leaves_a_certificate_the_admin_installed_when_none_is_assigned() -> None:
    assert plan(404, b"", served("installed", "b" * 64), "c" * 64) is None


def test_plan_does_nothing_on_404_while_the_lab_certificate_is_served() -> None:
    assert plan(404, b"", served("lab")) is None


@pytest.mark.parametrize("status", [400, 403, 500])
def test_plan_refuses_an_answer_the_route_does_not_give(status: int) -> None:
    with pytest.raises(SyncError):
        plan(status, b"{}", served("lab"))


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=4096))
def test_plan_of_any_answer_is_an_install_or_a_sync_error(data: bytes) -> None:
    try:
        step = plan(200, data, served("lab"))
    except SyncError:
        return
    assert isinstance(step, Install)


@dataclass
class FakeCloud:
    """The two agent routes, with what they were asked."""

    assigned: RelayCertificate | None = None
    asked_with: list[str | None] = field(default_factory=list)
    states: list[CertificateState] = field(default_factory=list)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/api/v1/agent/certificate", self.get)
        app.router.add_put("/api/v1/agent/certificate/status", self.put)
        return app

    def _authorized(self, request: web.Request) -> bool:
        return request.headers.get("Authorization") == f"Relay {RELAY[0]}:{RELAY[1]}"

    async def get(self, request: web.Request) -> web.StreamResponse:
        if not self._authorized(request):
            return web.json_response({"error": {"message": "who?"}}, status=401)
        self.asked_with.append(request.headers.get("If-None-Match"))
        if self.assigned is None:
            return web.json_response({"error": {"message": "none assigned"}}, status=404)
        # The header's entity tag is quoted (RFC 9110 8.8.3); the body's is bare.
        tag = f'"{self.assigned.etag}"'
        if request.headers.get("If-None-Match") == tag:
            return web.Response(status=304)
        return web.json_response(self.assigned.to_wire(), headers={"ETag": tag})

    async def put(self, request: web.Request) -> web.StreamResponse:
        if not self._authorized(request):
            return web.json_response({"error": {"message": "who?"}}, status=401)
        self.states.append(CertificateState.from_wire(await request.json()))
        return web.json_response({})


@dataclass
class Rig:
    cloud: FakeCloud
    serving: ServingCertificate
    credential: Path

    def feed(self) -> CertFeed:
        return CertFeed(self.credential, self.serving, interval=3600.0)


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    cloud = FakeCloud()
    runner = web.AppRunner(cloud.app(), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    port = int(runner.addresses[0][1])
    credential = tmp_path / "agent" / "credential.json"
    Identity(f"http://127.0.0.1:{port}", "tenant", *RELAY).save(credential)
    lab = ensure_lab_identity(tmp_path / "tls", ["localhost"], ["127.0.0.1"])
    try:
        yield Rig(cloud, ServingCertificate(lab, tmp_path / "tls" / "relay"), credential)
    finally:
        await runner.cleanup()
        # The feed installs on the loop's default executor: stop its threads.
        await asyncio.get_running_loop().shutdown_default_executor()


async def poll(feed: CertFeed) -> None:
    try:
        await feed.poll()
    finally:
        await feed.aclose()


async def test_a_delivered_certificate_is_installed_and_reported(rig: Rig) -> None:
    c = chain()
    rig.cloud.assigned = delivered(c)
    await poll(rig.feed())
    assert rig.serving.serving().fingerprint == fingerprint(c.leaf.cert)
    assert rig.cloud.states[-1].serving == fingerprint(c.leaf.cert)
    assert rig.cloud.states[-1].error == ""


async def test_an_unchanged_delivery_is_asked_for_with_its_etag_and_not_reinstalled(
    rig: Rig,
) -> None:
    rig.cloud.assigned = delivered(chain())
    feed = rig.feed()
    try:
        await feed.poll()
        reports = len(rig.cloud.states)
        await feed.poll()
    finally:
        await feed.aclose()
    assert rig.cloud.asked_with == [None, '"v1"']
    assert len(rig.cloud.states) == reports


async def test_a_restarted_feed_remembers_the_etag(rig: Rig) -> None:
    rig.cloud.assigned = delivered(chain())
    await poll(rig.feed())
    await poll(rig.feed())
    assert rig.cloud.asked_with == [None, '"v1"']


async def test_a_refused_delivery_is_reported_with_why_and_the_lab_one_stays(rig: Rig) -> None:
    lab = rig.serving.serving()
    rig.cloud.assigned = delivered(chain(leaf_key=rsa_key(1024)))
    await poll(rig.feed())
    assert rig.serving.serving() == lab
    assert rig.cloud.states[-1].serving == lab.fingerprint
    assert "weak_key" in rig.cloud.states[-1].error


async def test_an_expired_delivery_is_refused(rig: Rig) -> None:
    old = chain(leaf_dates=(NOW - timedelta(days=400), NOW - timedelta(days=1)))
    rig.cloud.assigned = delivered(old)
    await poll(rig.feed())
    assert rig.serving.serving().source == "lab"
    assert "expired" in rig.cloud.states[-1].error


async def test_an_unassigned_certificate_returns_the_relay_to_its_lab_one(rig: Rig) -> None:
    c = chain()
    rig.cloud.assigned = delivered(c)
    feed = rig.feed()
    try:
        await feed.poll()
        rig.cloud.assigned = None
        await feed.poll()
    finally:
        await feed.aclose()
    assert rig.serving.serving().source == "lab"
    assert rig.cloud.states[-1].previous == fingerprint(c.leaf.cert)


async def test_an_admins_own_certificate_is_kept_when_the_cloud_assigns_none(rig: Rig) -> None:
    c = chain()
    rig.serving.install(pem(c.leaf.cert, c.intermediate.cert, c.root.cert), key_pem(c.leaf.key))
    await poll(rig.feed())
    assert rig.serving.serving().fingerprint == fingerprint(c.leaf.cert)
    assert rig.cloud.states[-1].serving == fingerprint(c.leaf.cert)
