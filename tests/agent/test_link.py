"""The agent's client to the cloud: whole answers however they are chunked, and the
three kinds of failure the agent acts on differently."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
from aiohttp import web

from management_agent.link import CloudClient, Identity, LinkDown, Revoked, api_base
from relay.sync.messages import Job, JobBatch, Target

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
StartCloud = Callable[[Handler], Awaitable[CloudClient]]


@pytest.fixture
async def cloud() -> AsyncIterator[StartCloud]:
    runners: list[web.AppRunner] = []
    clients: list[CloudClient] = []

    async def start(handler: Handler) -> CloudClient:
        app = web.Application()
        app.router.add_route("*", "/api/v1/agent/{name}", handler)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        runners.append(runner)
        port = runner.addresses[0][1]
        client = CloudClient(Identity(f"http://127.0.0.1:{port}", "t", "r1", "s3cret"))
        clients.append(client)
        return client

    yield start
    for client in clients:
        await client.aclose()
    for runner in runners:
        await runner.cleanup()


def _batch(count: int) -> bytes:
    target = Target("0004f2000001", "127.20.0.1", "VVX500", "6.4.3", True, "pw")
    jobs = tuple(Job(i + 1, "t" * 32, "reboot", {}, target) for i in range(count))
    return json.dumps(JobBatch(jobs).to_wire()).encode()


async def test_a_large_answer_sent_in_small_chunks_is_read_whole(cloud: StartCloud) -> None:
    body = _batch(500)

    async def handler(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(request)
        for i in range(0, len(body), 997):
            await response.write(body[i : i + 997])
        await response.write_eof()
        return response

    client = await cloud(handler)
    batch = await client.jobs(0, 0)
    assert len(batch.jobs) == 500


async def test_the_credential_is_sent_as_the_relay_scheme(cloud: StartCloud) -> None:
    seen: list[str] = []

    async def handler(request: web.Request) -> web.StreamResponse:
        seen.append(request.headers["Authorization"])
        return web.json_response({"jobs": []})

    client = await cloud(handler)
    await client.jobs(0, 0)
    assert seen == ["Relay r1:s3cret"]


async def test_a_refused_credential_is_revoked_not_a_link_failure(cloud: StartCloud) -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        return web.json_response({"error": {"message": "unknown relay"}}, status=401)

    client = await cloud(handler)
    with pytest.raises(Revoked, match="unknown relay"):
        await client.jobs(0, 0)


async def test_a_server_error_is_a_link_failure_to_retry(cloud: StartCloud) -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        return web.json_response({"error": {"message": "boom"}}, status=503)

    client = await cloud(handler)
    with pytest.raises(LinkDown):
        await client.jobs(0, 0)


async def test_a_malformed_answer_is_a_link_failure(cloud: StartCloud) -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        return web.json_response({"jobs": [{"seq": "x"}]})

    client = await cloud(handler)
    with pytest.raises(LinkDown, match="malformed"):
        await client.jobs(0, 0)


async def test_an_unreachable_cloud_is_a_link_failure() -> None:
    client = CloudClient(Identity("http://127.0.0.1:9", "t", "r1", "s"))
    try:
        with pytest.raises(LinkDown, match="cannot reach"):
            await client.jobs(0, 0)
    finally:
        await client.aclose()


@pytest.mark.parametrize(
    ("given", "base"),
    [
        ("https://cloud.example.com", "https://cloud.example.com/api/v1"),
        ("https://cloud.example.com/api/v1/", "https://cloud.example.com/api/v1"),
        ("http://127.0.0.1:8480/api/v1", "http://127.0.0.1:8480/api/v1"),
    ],
)
def test_the_cloud_address_may_be_given_with_or_without_the_api_path(given: str, base: str) -> None:
    assert str(api_base(given)) == base


def test_a_cloud_address_that_is_not_http_is_refused() -> None:
    with pytest.raises(ValueError, match="not an http"):
        api_base("ftp://cloud.example.com")
