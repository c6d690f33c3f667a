"""The request sequence a real VVX 500 on UC Software 5.9.7 sent (phones.md section 2),
replayed byte for byte over one TLS connection kept alive, as the phone does.

The client is a plain blocking `ssl` socket writing the exact request bytes; it runs
in a thread because the service under test lives on the test's own event loop.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import socket
import ssl
from dataclasses import dataclass
from urllib.parse import urlsplit

from relay.proto.polycom.master import parse_master
from tests.phones.conftest import MAC, UA_APPLICATION, UA_UPDATER, Relay

BOOT_LOG = b"0101000000|boot |1|00||Updater 5.9.7.47435 starting\n"
APP_LOG = b"0101000012|app1 |1|00||Application 5.9.7.4477 up\n"
IMAGE = bytes(range(256)) * 1000
PART = "3111-44500-001"


@dataclass(frozen=True)
class Step:
    method: str
    path: str
    user_agent: str
    body: bytes = b""


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes


def vvx500_sequence(firmware_path: str | None = None) -> list[Step]:
    """phones.md section 2, in order; the firmware GET only when one is offered."""
    steps = [
        Step("PUT", f"/{MAC}-boot.log", UA_UPDATER, BOOT_LOG),
        Step("GET", f"/{MAC}.cfg", UA_APPLICATION),
    ]
    if firmware_path is not None:
        steps.append(Step("GET", firmware_path, UA_APPLICATION))
    steps += [
        Step("GET", f"/{MAC}-phone.cfg", UA_APPLICATION),
        Step("GET", f"/{MAC}-web.cfg", UA_APPLICATION),
        Step("GET", "/000000000000-license.cfg", UA_APPLICATION),
        Step("GET", f"/{MAC}-license.cfg", UA_APPLICATION),
        Step("GET", f"/{MAC}-calls.xml", UA_APPLICATION),
        Step("GET", f"/{MAC}-directory.xml", UA_APPLICATION),
        Step("GET", "/000000000000-directory.xml", UA_APPLICATION),
        Step("HEAD", f"/{MAC}-app.log", UA_APPLICATION),
        Step("PUT", f"/{MAC}-app.log", UA_APPLICATION, APP_LOG),
    ]
    return steps


def request_bytes(step: Step, host: str, authorization: str) -> bytes:
    lines = [
        f"{step.method} {step.path} HTTP/1.1",
        f"Host: {host}",
        f"User-Agent: {step.user_agent}",
        f"Authorization: {authorization}",
        "Accept: */*",
    ]
    if step.method == "PUT":
        lines += ["Content-Type: text/plain", f"Content-Length: {len(step.body)}"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii") + step.body


class Reader:
    """HTTP/1.1 responses off one socket (Content-Length or chunked bodies)."""

    def __init__(self, sock: ssl.SSLSocket) -> None:
        self.sock = sock
        self.buffer = b""

    def _fill(self) -> None:
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError("the server closed the kept-alive connection")
        self.buffer += data

    def _line(self) -> bytes:
        while b"\r\n" not in self.buffer:
            self._fill()
        line, self.buffer = self.buffer.split(b"\r\n", 1)
        return line

    def _exactly(self, size: int) -> bytes:
        while len(self.buffer) < size:
            self._fill()
        data, self.buffer = self.buffer[:size], self.buffer[size:]
        return data

    def response(self, method: str) -> Answer:
        status_line = self._line().decode("latin-1")
        version, status, _ = status_line.split(" ", 2)
        assert version == "HTTP/1.1", status_line
        headers: dict[str, str] = {}
        while line := self._line():
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        code = int(status)
        if method == "HEAD" or code in (204, 304):
            return Answer(code, headers, b"")
        if headers.get("transfer-encoding", "").lower() == "chunked":
            body = b""
            while size := int(self._line().split(b";")[0], 16):
                body += self._exactly(size)
                assert self._line() == b""
            while self._line():
                pass
            return Answer(code, headers, body)
        return Answer(code, headers, self._exactly(int(headers.get("content-length", "0"))))


def replay(relay: Relay, steps: list[Step]) -> list[Answer]:
    """Send every step over one TLS connection, one request after the other."""
    url = urlsplit(relay.https)
    host, port = url.hostname, url.port
    assert host is not None and port is not None
    user, password = relay.account
    authorization = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
    context = ssl.create_default_context(cafile=relay.ca_cert)
    answers = []
    with (
        socket.create_connection((host, port), timeout=10) as raw,
        context.wrap_socket(raw, server_hostname=host) as sock,
    ):
        reader = Reader(sock)
        for step in steps:
            sock.sendall(request_bytes(step, f"{host}:{port}", authorization))
            answer = reader.response(step.method)
            assert answer.headers.get("connection", "").lower() != "close", step
            answers.append(answer)
    return answers


EXPECTED = {
    f"PUT /{MAC}-boot.log": 204,
    f"GET /{MAC}.cfg": 200,
    f"GET /{MAC}-phone.cfg": 404,
    f"GET /{MAC}-web.cfg": 404,
    "GET /000000000000-license.cfg": 404,
    f"GET /{MAC}-license.cfg": 404,
    f"GET /{MAC}-calls.xml": 404,
    f"GET /{MAC}-directory.xml": 404,
    "GET /000000000000-directory.xml": 404,
    f"HEAD /{MAC}-app.log": 404,
    f"PUT /{MAC}-app.log": 204,
}


async def test_the_vvx500_sequence_gets_the_expected_statuses(relay: Relay) -> None:
    steps = vvx500_sequence()
    answers = await asyncio.to_thread(replay, relay, steps)
    got = {f"{s.method} {s.path}": a.status for s, a in zip(steps, answers, strict=True)}
    assert got == EXPECTED
    assert parse_master(answers[1].body).config_files[0] == f"{MAC}-profile.cfg"


async def test_the_vvx500_sequence_leaves_a_vvx500_on_5_9_7_4477(relay: Relay) -> None:
    await asyncio.to_thread(replay, relay, vvx500_sequence())
    device = (await relay.api.get(f"/devices/{MAC}")).body
    assert device["model"] == "VVX500"
    assert device["firmware"] == "5.9.7.4477"
    assert device["user_agent"] == UA_APPLICATION
    assert device["online"] is True


async def test_the_vvx500_sequence_stores_both_logs(relay: Relay) -> None:
    await asyncio.to_thread(replay, relay, vvx500_sequence())
    day = (await relay.api.get(f"/devices/{MAC}/logs")).body["days"][0]
    assert {f["name"]: f["size"] for f in day["files"]} == {
        f"{MAC}-boot.log": len(BOOT_LOG),
        f"{MAC}-app.log": len(APP_LOG),
    }
    boot = await relay.api.get(f"/devices/{MAC}/logs/{day['date']}/{MAC}-boot.log")
    assert boot.text.encode() == BOOT_LOG


async def test_the_vvx500_sequence_fetches_offered_firmware(relay: Relay) -> None:
    reply = await relay.api.call(
        "POST",
        "/images",
        data=IMAGE,
        content_type="application/octet-stream",
        params={"model": "VVX", "version": "6.4.3", "filename": "sip.ld"},
    )
    assert reply.status == 201, reply.text
    image = reply.body["id"]
    await relay.api.put("/deployment/global/-", {"profiles": ["Software-VVX-6.4.3"]})
    path = f"/images/{image}/{PART}.sip.ld"
    steps = vvx500_sequence(firmware_path=path)
    answers = await asyncio.to_thread(replay, relay, steps)
    master = parse_master(answers[1].body)
    assert master.app_file_path == f"images/{image}/sip.ld"
    assert answers[2].status == 200
    assert hashlib.sha256(answers[2].body).hexdigest() == hashlib.sha256(IMAGE).hexdigest()
    assert [a.status for a in answers[3:]] == [404] * 8 + [204]


async def test_an_older_phone_falls_back_to_the_default_master(relay: Relay) -> None:
    """phones.md: "An older phone got 404 for <mac>.cfg and fell back to 000000000000.cfg"."""
    assert (await relay.api.patch("/tenant", {"auto_add": False})).status == 200
    steps = [
        Step("GET", f"/{MAC}.cfg", UA_APPLICATION),
        Step("GET", "/000000000000.cfg", UA_APPLICATION),
    ]
    answers = await asyncio.to_thread(replay, relay, steps)
    assert [a.status for a in answers] == [404, 200]
    master = parse_master(answers[1].body)
    assert master.config_files[0] == "[PHONE_MAC_ADDRESS]-profile.cfg"
