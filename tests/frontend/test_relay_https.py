"""Phones provisioning over HTTPS through the relay (issue 5, part 3), with curl as the phone.

The relay relays every request to the cloud as the registered relay, forwards
the phone's address, account and User-Agent, stores nothing, serves published
firmware from its own disk, and answers 503 + Retry-After while the cloud is
unreachable.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from certs.lab import ServerIdentity
from certs.tls import client_context, server_context
from relay.frontend.firmware import PublishedImages
from relay.frontend.stack import FrontEnd, FrontEndPorts
from relay.frontend.upstream import Upstream
from tests.frontend.published import synced
from tests.frontend.tcpgate import TcpGate
from tests.phones.conftest import (
    NO_AUTH,
    Relay,
    RelayFactory,
    activity,
    relay_up,  # noqa: F401 - the fixture
)

MAC = "0004f2a1b2c3"
WRONG = ("phones", "not-the-password")
PHONE = "127.0.0.7"


@pytest.fixture
async def relayed(relay_up: RelayFactory) -> AsyncIterator[Relay]:  # noqa: F811
    """`relay up` with its embedded relay: the cloud and the relay's listeners."""
    async with relay_up(agent=True, heartbeat_seconds=60.0) as running:
        yield running


def _via(relay: Relay) -> str:
    return str(relay.facts["relay_https"])


async def test_the_ready_line_names_the_relays_https_listener(relayed: Relay) -> None:
    assert _via(relayed).startswith("https://127.0.0.1:")
    assert _via(relayed) != relayed.facts["provisioning"]


async def test_a_phone_gets_through_the_relay_the_master_file_the_cloud_gives_it(
    relayed: Relay,
) -> None:
    through = await relayed.curl("GET", f"/{MAC}.cfg", base=_via(relayed))
    direct = await relayed.curl("GET", f"/{MAC}.cfg")
    assert through.status == 200
    assert through.body == direct.body


async def test_the_cloud_records_the_phone_address_the_relay_forwards(relayed: Relay) -> None:
    reply = await relayed.curl(
        "GET", f"/{MAC}.cfg", base=_via(relayed), extra=["--interface", PHONE]
    )
    assert reply.status == 200
    device = (await relayed.api.get(f"/devices/{MAC}")).body
    assert device["private_ip"] == PHONE


async def test_a_wrong_account_through_the_relay_is_refused_and_audited_with_the_phone_address(
    relayed: Relay,
) -> None:
    reply = await relayed.curl(
        "GET", f"/{MAC}.cfg", auth=WRONG, base=_via(relayed), extra=["--interface", PHONE]
    )
    assert reply.status == 401
    assert "www-authenticate" in reply.headers
    entries = await activity(relayed, "auth_failed")
    assert [e["detail"]["source"] for e in entries] == [PHONE]


async def test_a_request_without_an_account_through_the_relay_is_refused(relayed: Relay) -> None:
    reply = await relayed.curl("GET", f"/{MAC}.cfg", auth=NO_AUTH, base=_via(relayed))
    assert reply.status == 401


async def test_a_log_uploaded_through_the_relay_is_stored_by_the_cloud(relayed: Relay) -> None:
    log_line = b"0000000001|boot |4|00|hello through the relay\n"
    put = await relayed.curl("PUT", f"/{MAC}-app.log", upload=log_line, base=_via(relayed))
    assert put.status == 204
    head = await relayed.curl("HEAD", f"/{MAC}-app.log")
    assert int(head.headers["content-length"]) == len(log_line)


async def test_a_write_outside_the_upload_names_is_refused_through_the_relay(
    relayed: Relay,
) -> None:
    reply = await relayed.curl(
        "PUT", "/000000000000.cfg", upload=b"<x/>", base=_via(relayed), check=False
    )
    assert reply.status == 403


async def test_a_traversal_is_refused_by_the_relay_and_logged(
    relayed: Relay, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="relay.provisioning"):
        reply = await relayed.curl("GET", "/../../etc/passwd", base=_via(relayed), check=False)
    assert reply.status == 400
    assert any("path_rejected" in r.getMessage() for r in caplog.records)


async def test_firmware_published_on_the_relay_is_served_from_its_disk(relayed: Relay) -> None:
    image = bytes(range(256)) * 4096
    await synced(relayed, image)
    reply = await relayed.curl("GET", "/3111-48500-001.sip.ld", base=_via(relayed))
    assert reply.status == 200
    assert hashlib.sha256(reply.body).digest() == hashlib.sha256(image).digest()
    # The cloud has no such file: only the relay's disk could answer.
    assert (await relayed.curl("GET", "/3111-48500-001.sip.ld", check=False)).status == 404


async def test_firmware_on_the_relay_needs_the_provisioning_account(relayed: Relay) -> None:
    await synced(relayed, b"image")
    reply = await relayed.curl(
        "GET", "/3111-48500-001.sip.ld", auth=WRONG, base=_via(relayed), check=False
    )
    assert reply.status == 401


async def test_firmware_on_the_relay_honours_a_range(relayed: Relay) -> None:
    await synced(relayed, b"0123456789")
    reply = await relayed.curl(
        "GET", "/3111-48500-001.sip.ld", headers=["Range: bytes=2-5"], base=_via(relayed)
    )
    assert reply.status == 206
    assert reply.body == b"2345"


async def test_a_forged_relay_credential_is_refused_by_the_cloud_and_audited(
    relayed: Relay,
) -> None:
    reply = await relayed.curl(
        "GET",
        f"/{MAC}.cfg",
        headers=["X-Relay-Authorization: Relay rfake:nope", "X-Forwarded-For: 192.0.2.9"],
    )
    assert reply.status == 401
    assert await activity(relayed, "auth_failed")


async def test_a_relayed_tftp_read_needs_the_relay_credential_not_an_account(
    relayed: Relay,
) -> None:
    credential = json.loads((Path(relayed.facts["data_dir"]) / "agent/credential.json").read_text())
    relay_header = f"X-Relay-Authorization: Relay {credential['relay_id']}:{credential['secret']}"
    vouched = await relayed.curl(
        "GET", f"/{MAC}.cfg", auth=NO_AUTH, headers=[relay_header, "X-Phone-Transport: tftp"]
    )
    alone = await relayed.curl(
        "GET", f"/{MAC}.cfg", auth=NO_AUTH, headers=["X-Phone-Transport: tftp"]
    )
    assert (vouched.status, alone.status) == (200, 401)


async def test_a_relayed_tftp_write_is_refused(relayed: Relay) -> None:
    credential = json.loads((Path(relayed.facts["data_dir"]) / "agent/credential.json").read_text())
    relay_header = f"X-Relay-Authorization: Relay {credential['relay_id']}:{credential['secret']}"
    reply = await relayed.curl(
        "PUT",
        f"/{MAC}-app.log",
        auth=NO_AUTH,
        upload=b"log\n",
        headers=[relay_header, "X-Phone-Transport: tftp"],
        check=False,
    )
    assert reply.status == 403


@pytest.fixture
async def gated(relayed: Relay) -> AsyncIterator[tuple[Relay, TcpGate, str]]:
    """A second set of relay listeners whose way to the cloud runs through a gate."""
    data_dir = Path(relayed.facts["data_dir"])
    credential = json.loads((data_dir / "agent/credential.json").read_text())
    cloud_port = int(relayed.facts["provisioning"].rsplit(":", 1)[1].rstrip("/"))
    gate = TcpGate(("127.0.0.1", cloud_port))
    await gate.open()
    upstream = Upstream(
        f"https://127.0.0.1:{gate.port}/",
        credential["relay_id"],
        credential["secret"],
        tls=client_context(Path(relayed.ca_cert)),
    )
    tls_dir = data_dir / "tls"
    identity = ServerIdentity(tls_dir / "ca.pem", tls_dir / "server.pem", tls_dir / "server.key")
    front = FrontEnd(
        upstream,
        PublishedImages(data_dir / "images"),
        server_context(identity),
        FrontEndPorts("127.0.0.1", 0, None),
    )
    facts = await front.start()
    try:
        yield relayed, gate, facts["relay_https"]
    finally:
        await front.close()
        await gate.close()


async def test_an_unreachable_cloud_gets_the_phone_a_retryable_503(
    gated: tuple[Relay, TcpGate, str],
) -> None:
    relay, gate, base = gated
    await gate.close()
    reply = await relay.curl("GET", f"/{MAC}.cfg", base=base, check=False)
    assert reply.status == 503
    assert reply.headers["retry-after"].isdigit()


async def test_an_outage_is_logged_once_however_many_phones_ask(
    gated: tuple[Relay, TcpGate, str], caplog: pytest.LogCaptureFixture
) -> None:
    relay, gate, base = gated
    await gate.close()
    with caplog.at_level(logging.INFO, logger="relay.upstream"):
        for _ in range(4):
            await relay.curl("GET", f"/{MAC}.cfg", base=base, check=False)
    lines = [r.getMessage() for r in caplog.records if r.name == "relay.upstream"]
    assert sum("cloud_unreachable" in line for line in lines) == 1


async def test_the_relay_recovers_by_itself_when_the_cloud_is_back(
    gated: tuple[Relay, TcpGate, str], caplog: pytest.LogCaptureFixture
) -> None:
    relay, gate, base = gated
    await gate.close()
    assert (await relay.curl("GET", f"/{MAC}.cfg", base=base, check=False)).status == 503
    await gate.open()
    with caplog.at_level(logging.INFO, logger="relay.upstream"):
        reply = await relay.curl("GET", f"/{MAC}.cfg", base=base)
    assert reply.status == 200
    assert any("cloud_reachable_again" in r.getMessage() for r in caplog.records)


async def _partner(relay: Relay, *args: str) -> dict[str, Any]:
    """One partner-API call with curl and the tenant's ZTP key."""
    key = (await relay.api.post("/tenant/ztp-key")).body["api_key"]
    process = await asyncio.create_subprocess_exec(
        relay.curl_binary, "-s", "-H", f"API-KEY: {key}", *args, stdout=asyncio.subprocess.PIPE
    )
    out, _ = await process.communicate()
    return dict(json.loads(out))


async def test_a_phone_finds_its_server_through_the_relays_ztp_copy(
    relay_up: RelayFactory,  # noqa: F811
) -> None:
    async with relay_up(agent=True, ztp_sync_seconds=0.2) as relay:
        api = relay.facts["api"]
        profile = await _partner(
            relay,
            "-H",
            "Content-Type: application/json",
            "-d",
            json.dumps({"name": "HQ", "url": _via(relay), "user": "phones", "password": "pw"}),
            f"{api}/ztp/profiles",
        )
        await _partner(
            relay,
            "-H",
            "Content-Type: application/json",
            "-d",
            json.dumps({"id": MAC, "profile": profile["id"]}),
            f"{api}/ztp/devices",
        )
        lookup = f"{relay.facts['ztp']}/devices/{MAC}"
        for _ in range(100):
            reply = await relay.curl("GET", "", auth=NO_AUTH, base=lookup, check=False)
            if reply.status == 200:
                break
            await asyncio.sleep(0.1)
        assert reply.status == 200
        assert json.loads(reply.body) == {
            "mac": MAC,
            "url": _via(relay),
            "user": "phones",
            "password": "pw",
        }


async def test_bind_chooses_the_address_of_the_relays_listeners(
    relay_up: RelayFactory,  # noqa: F811
) -> None:
    async with relay_up(agent=True, bind="127.0.0.9") as relay:
        assert _via(relay).startswith("https://127.0.0.9:")
        # The lab certificate names the bound address, so phones verifying it connect.
        assert (await relay.curl("GET", f"/{MAC}.cfg", base=_via(relay))).status == 200


async def test_plain_http_for_phones_is_off_unless_asked_for(relay_up: RelayFactory) -> None:  # noqa: F811
    async with relay_up(agent=True) as relay:
        assert "relay_http" not in relay.facts
    async with relay_up(agent=True, relay_http=True) as relay:
        reply = await relay.curl("GET", f"/{MAC}.cfg", base=relay.facts["relay_http"])
        assert reply.status == 200


async def test_relay_up_serves_the_master_file_over_tftp_as_over_https(relayed: Relay) -> None:
    url = f"{relayed.facts['relay_tftp']}{MAC}.cfg"
    process = await asyncio.create_subprocess_exec(
        relayed.curl_binary, "-s", "--max-time", "15", url, stdout=asyncio.subprocess.PIPE
    )
    body, _ = await process.communicate()
    direct = await relayed.curl("GET", f"/{MAC}.cfg")
    assert process.returncode == 0
    assert body == direct.body


@pytest.mark.parametrize("tls", [False, True], ids=["ftp", "ftps"])
async def test_relay_up_serves_the_master_file_over_ftp_as_over_https(
    relayed: Relay, tls: bool
) -> None:
    user, password = relayed.account
    url = f"{relayed.facts['relay_ftp']}{MAC}.cfg"
    extra = ["--ssl-reqd", "--cacert", relayed.ca_cert] if tls else []
    process = await asyncio.create_subprocess_exec(
        relayed.curl_binary,
        "-s",
        "--max-time",
        "15",
        "-u",
        f"{user}:{password}",
        *extra,
        url,
        stdout=asyncio.subprocess.PIPE,
    )
    body, _ = await process.communicate()
    direct = await relayed.curl("GET", f"/{MAC}.cfg")
    assert process.returncode == 0
    assert body == direct.body
