"""The TLS policy against real peers: openssl s_client, curl and Python's ssl module.

The responder is `asyncio.start_server(ssl=server_context(...))` running its own event
loop in a thread, so the test can drive blocking peers (subprocesses, ssl sockets).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from certs.lab import ServerIdentity, ensure_lab_identity
from certs.tls import client_context, server_context

PEER_TIMEOUT = 15.0
START_TIMEOUT = 10.0
BODY = b"relay lab says hello\n"
RESPONSE = (
    b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n"
    b"Content-Length: " + str(len(BODY)).encode() + b"\r\n\r\n" + BODY
)
LAB_NAME = "phones.relay.test"


class Responder:
    """A one-answer HTTPS responder on 127.0.0.1, port chosen by the kernel."""

    def __init__(self, context: ssl.SSLContext) -> None:
        self.context = context
        self.port = 0
        self._ready = threading.Event()
        self._failure: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, name="tls-responder")

    def __enter__(self) -> Responder:
        self._thread.start()
        if not self._ready.wait(START_TIMEOUT):
            raise AssertionError("the TLS responder did not start")
        if self._failure is not None:
            self._thread.join(START_TIMEOUT)
            raise AssertionError("the TLS responder failed to start") from self._failure
        return self

    def __exit__(self, *_: object) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(START_TIMEOUT)
        assert not self._thread.is_alive(), "the TLS responder did not stop"

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:
            self._failure = exc
            self._ready.set()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        handlers: set[asyncio.Task[None]] = set()

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            task = asyncio.current_task()
            assert task is not None
            handlers.add(task)
            try:
                await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), PEER_TIMEOUT)
                writer.write(RESPONSE)
                await writer.drain()
            except (OSError, asyncio.IncompleteReadError, TimeoutError):
                pass
            finally:
                writer.close()
                with contextlib.suppress(OSError, TimeoutError):
                    await asyncio.wait_for(writer.wait_closed(), PEER_TIMEOUT)
                handlers.discard(task)

        server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=self.context)
        async with server:
            self.port = int(server.sockets[0].getsockname()[1])
            self._ready.set()
            await self._stop.wait()
        for task in list(handlers):
            task.cancel()
        await asyncio.gather(*handlers, return_exceptions=True)


def tool(name: str) -> str:
    """The binary, or skip naming the Debian package that provides it."""
    found = shutil.which(name)
    if found is None:
        pytest.skip(f"{name} is not installed (Debian package: {name})")
    return found


def peer_env(home: Path) -> dict[str, str]:
    """The caller's environment without anything that would add trust anchors."""
    hidden = {"SSL_CERT_FILE", "SSL_CERT_DIR", "CURL_CA_BUNDLE", "REQUESTS_CA_BUNDLE"}
    env = {k: v for k, v in os.environ.items() if k not in hidden}
    env["HOME"] = str(home)
    return env


def run(command: list[str], home: Path) -> subprocess.CompletedProcess[str]:
    """Run a peer to completion with stdin at EOF; subprocess.run closes every pipe."""
    done = subprocess.run(
        command,
        input=b"",
        capture_output=True,
        timeout=PEER_TIMEOUT,
        check=False,
        env=peer_env(home),
        cwd=home,
    )
    return subprocess.CompletedProcess(
        done.args,
        done.returncode,
        done.stdout.decode("utf-8", "replace"),
        done.stderr.decode("utf-8", "replace"),
    )


@pytest.fixture
def identity(tmp_path: Path) -> ServerIdentity:
    return ensure_lab_identity(tmp_path / "tls", [LAB_NAME], [])


@pytest.fixture
def responder(identity: ServerIdentity) -> Iterator[Responder]:
    with Responder(server_context(identity)) as running:
        yield running


def s_client(responder: Responder, *args: str) -> list[str]:
    return [tool("openssl"), "s_client", "-connect", f"127.0.0.1:{responder.port}", *args]


def test_openssl_tls12_verifies_the_chain_and_gets_ecdsa(
    responder: Responder, identity: ServerIdentity, tmp_path: Path
) -> None:
    done = run(
        s_client(
            responder,
            "-CAfile",
            str(identity.ca_cert),
            "-verify_return_error",
            "-verify_ip",
            "127.0.0.1",
            "-tls1_2",
        ),
        tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert "Verify return code: 0 (ok)" in done.stdout
    assert "Protocol  : TLSv1.2" in done.stdout
    assert "Peer signature type: ECDSA" in done.stdout
    assert "Cipher is ECDHE-ECDSA-" in done.stdout


def test_openssl_tls12_receives_a_session_ticket(responder: Responder, tmp_path: Path) -> None:
    done = run(s_client(responder, "-tls1_2"), tmp_path)
    assert done.returncode == 0, done.stderr
    assert "TLS session ticket:" in done.stdout


def test_openssl_default_negotiates_tls13(
    responder: Responder, identity: ServerIdentity, tmp_path: Path
) -> None:
    done = run(
        s_client(responder, "-CAfile", str(identity.ca_cert), "-verify_return_error"), tmp_path
    )
    assert done.returncode == 0, done.stderr
    assert "New, TLSv1.3" in done.stdout


def test_openssl_tls11_is_refused(responder: Responder, tmp_path: Path) -> None:
    # SECLEVEL=0 makes sure this client can really offer TLS 1.1, so the refusal is ours.
    done = run(s_client(responder, "-tls1_1", "-cipher", "DEFAULT:@SECLEVEL=0", "-msg"), tmp_path)
    assert ">>> TLS 1.1, Handshake" in done.stdout
    assert "ClientHello" in done.stdout
    assert done.returncode != 0
    assert "ServerHello" not in done.stdout
    assert "Cipher is (NONE)" in done.stdout


def test_openssl_tls12_without_ecdhe_aead_is_refused(responder: Responder, tmp_path: Path) -> None:
    done = run(
        s_client(
            responder, "-tls1_2", "-cipher", "AES256-GCM-SHA384:AES128-SHA:ECDHE-ECDSA-AES128-SHA"
        ),
        tmp_path,
    )
    assert done.returncode != 0
    assert "Cipher is (NONE)" in done.stdout


def curl(responder: Responder, host: str, *args: str) -> list[str]:
    command = [tool("curl"), "-q", "--silent", "--show-error", "--max-time", "10", *args]
    if host != "127.0.0.1":
        command += ["--resolve", f"{host}:{responder.port}:127.0.0.1"]
    return [*command, f"https://{host}:{responder.port}/"]


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", LAB_NAME])
def test_curl_with_the_lab_ca_gets_the_response(
    responder: Responder, identity: ServerIdentity, tmp_path: Path, host: str
) -> None:
    done = run(curl(responder, host, "--cacert", str(identity.ca_cert)), tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout == BODY.decode()


def test_curl_without_the_lab_ca_fails_verification(responder: Responder, tmp_path: Path) -> None:
    done = run(curl(responder, "127.0.0.1"), tmp_path)
    assert done.returncode == 60, done.stderr
    assert "SSL certificate problem" in done.stderr


def fetch(
    context: ssl.SSLContext, port: int, session: ssl.SSLSession | None = None
) -> tuple[bytes, ssl.SSLSession | None, bool | None]:
    """One GET over a fresh connection: the whole answer, its session, whether resumed."""
    with (
        socket.create_connection(("127.0.0.1", port), timeout=PEER_TIMEOUT) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1", session=session) as tls,
    ):
        tls.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        answer = b""
        while chunk := tls.recv(65536):
            answer += chunk
        return answer, tls.session, tls.session_reused


def test_python_client_with_the_lab_ca_gets_the_response(
    responder: Responder, identity: ServerIdentity
) -> None:
    answer, _, _ = fetch(client_context(identity.ca_cert), responder.port)
    assert answer.endswith(b"\r\n\r\n" + BODY)


def test_python_client_with_the_system_store_refuses_the_lab_server(responder: Responder) -> None:
    with pytest.raises(ssl.SSLCertVerificationError):
        fetch(client_context(), responder.port)


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
def test_python_client_resumes_the_session(
    responder: Responder, identity: ServerIdentity, version: ssl.TLSVersion
) -> None:
    context = client_context(identity.ca_cert)
    context.maximum_version = version
    _, session, first_reused = fetch(context, responder.port)
    assert session is not None
    assert first_reused is False
    answer, _, reused = fetch(context, responder.port, session)
    assert reused is True
    assert answer.endswith(BODY)
