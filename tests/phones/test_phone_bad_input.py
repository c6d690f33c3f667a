"""Hostile or broken input to the phone-facing service: never a 5xx, traversal refused
and audited, slow clients do not starve phones, only GET/HEAD/PUT."""

from __future__ import annotations

import asyncio
import ssl
import time
from urllib.parse import urlsplit

import pytest

from tests.phones.conftest import MAC, NO_AUTH, Relay, activity

SLOW_SOCKETS = 30
SLOW_SECONDS = 3.0


@pytest.mark.parametrize(
    "user_agent",
    [
        "garbage",
        "",
        "Mozilla/5.0 (X11; Linux x86_64)",
        "PolycomVVX-VVX_500-UA/",
        "FileTransport PolycomVVX--UA/5.9 Type/Application",
        "FileTransport PolycomVVX-VVX_500-UA/5.9.7.4477 Type/" + "A" * 100,
        "(SN:) Type/ -UA/ Poly-",
        "FileTransport Polycom\u00e9VVX-VVX_500-UA/5.9.7 Type/Application",
        "\x7f\x01\x02 ctl",
        "FileTransport PolycomVVX-VVX_500-UA/5.9.7.4477 Type/Application " * 20,
        "A" * 8000,
    ],
    ids=lambda ua: f"{ua[:24]!r}..{len(ua)}",
)
async def test_a_garbage_user_agent_is_served_or_refused_never_5xx(
    relay: Relay, user_agent: str
) -> None:
    for path in (f"/{MAC}.cfg", f"/{MAC}-profile.cfg", "/000000000000.cfg"):
        reply = await relay.curl("GET", path, user_agent=user_agent)
        assert 200 <= reply.status < 500, (path, reply.status, reply.text)


async def test_a_10_kb_user_agent_is_served_or_cleanly_refused(relay: Relay) -> None:
    reply = await relay.curl("GET", f"/{MAC}.cfg", user_agent="X" * 10240)
    assert reply.status == 200 or 400 <= reply.status < 500
    # and the service is still fine afterwards
    assert (await relay.curl("GET", f"/{MAC}.cfg")).status == 200


async def test_a_garbage_user_agent_still_records_the_phone_without_a_model(
    relay: Relay,
) -> None:
    assert (await relay.curl("GET", f"/{MAC}.cfg", user_agent="garbage")).status == 200
    device = (await relay.api.get(f"/devices/{MAC}")).body
    assert device["model"] is None
    assert device["user_agent"] == "garbage"


TRAVERSALS = [
    "/../../etc/passwd",
    "/../000000000000.cfg",
    "/%2e%2e/%2e%2e/etc/passwd",
    "/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
    "/%2E%2E%2F%2E%2E%2Fetc%2Fpasswd",
    "/%252e%252e/%252e%252e/etc/passwd",
    "/%252e%252e%252fetc%252fpasswd",
    "/..%5c..%5cetc%5cpasswd",
    "/..\\..\\etc\\passwd",
    "/%c0%ae%c0%ae/%c0%ae%c0%ae/etc/passwd",
    "/%c0%af..%c0%afetc%c0%afpasswd",
    "/./000000000000.cfg",
    "/contacts/./000000000000-license.cfg",
    "//etc/passwd",
    "/contacts//000000000000-license.cfg",
    "/000000000000.cfg%00.wav",
    "/%00",
    "/ring.wav%00",
    "/" + "a" * 600 + ".cfg",
    "/" + "%41" * 600,
    "/etc/passwd",
    "/contacts/../../etc/passwd",
    "/images/0123456789abcdef/..%2f..%2fetc%2fpasswd",
    "/images/../../etc/passwd",
    "/%2fetc%2fpasswd",
    "/C:/Windows/win.ini",
    "/a/b/c/d",
    "/ring.wav/",
    "/%",
    "/%zz",
]


@pytest.mark.parametrize("path", TRAVERSALS)
async def test_a_traversal_attempt_gets_400_and_is_audited(relay: Relay, path: str) -> None:
    reply = await relay.curl("GET", path)
    assert reply.status == 400, reply.text
    assert b"root:" not in reply.body
    entries = await activity(relay, "path_rejected")
    assert len(entries) == 1, entries
    assert entries[0]["detail"]["source"] == "127.0.0.1"


async def test_a_traversal_attempt_without_credentials_is_still_400(relay: Relay) -> None:
    reply = await relay.curl("GET", "/%2e%2e%2f%2e%2e%2fetc%2fpasswd", auth=NO_AUTH)
    assert reply.status == 400
    assert len(await activity(relay, "path_rejected")) == 1


async def test_a_traversal_put_is_refused_and_writes_nothing(relay: Relay) -> None:
    reply = await relay.curl("PUT", f"/..%2f{MAC}-app.log", upload=b"x\n")
    assert reply.status == 400
    assert (await relay.curl("HEAD", f"/{MAC}-app.log")).status == 404


async def test_slow_loris_sockets_do_not_stop_phones(relay: Relay) -> None:
    started = time.monotonic()
    url = urlsplit(relay.https)
    host, port = url.hostname, url.port
    assert host is not None and port is not None
    partial = (
        f"GET /{MAC}.cfg HTTP/1.1\r\nHost: {host}:{port}\r\n"
        "User-Agent: FileTransport PolycomVVX-VVX_500-UA/5.9.7.4477 Type/Application\r\n"
        "X-Slow: " + "z" * 200
    ).encode()
    context = ssl.create_default_context(cafile=relay.ca_cert)
    writers: list[asyncio.StreamWriter] = []
    try:
        for _ in range(SLOW_SOCKETS):
            _, writer = await asyncio.wait_for(
                asyncio.open_connection(host, port, ssl=context), 2.0
            )
            writers.append(writer)

        async def dribble() -> None:
            """One byte per socket at a time, until SLOW_SECONDS have passed."""
            index = 0
            end = time.monotonic() + SLOW_SECONDS
            while time.monotonic() < end and index < len(partial):
                for writer in writers:
                    writer.write(partial[index : index + 1])
                    await writer.drain()
                index += 1
                await asyncio.sleep(0.05)

        slow = asyncio.create_task(dribble())
        try:
            await asyncio.sleep(0.3)
            for _ in range(5):
                begun = time.monotonic()
                reply = await relay.curl("GET", f"/{MAC}.cfg")
                assert reply.status == 200
                assert time.monotonic() - begun < 2.0
            assert not slow.done(), "the slow sockets stopped before the phones were served"
        finally:
            await slow
    finally:
        for writer in writers:
            writer.transport.abort()
    assert time.monotonic() - started < 10.0


@pytest.mark.parametrize("method", ["POST", "DELETE", "PATCH", "OPTIONS", "TRACE", "PROPFIND"])
async def test_methods_other_than_get_head_put_get_405(relay: Relay, method: str) -> None:
    reply = await relay.curl(method, f"/{MAC}.cfg")
    assert reply.status == 405
    assert set(reply.headers["allow"].replace(" ", "").split(",")) == {"GET", "HEAD", "PUT"}
    assert (await relay.api.get(f"/devices/{MAC}")).status == 404
