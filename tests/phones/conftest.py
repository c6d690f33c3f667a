"""The phone-facing provisioning service as phones see it: the real `relay.app.run`
in-process on free loopback ports, driven with the real `curl`.

`relay_up(**config)` starts one relay (HTTPS and plain-HTTP provisioning
listeners, the REST API) and yields a `Relay`: the REST client (`relay.api`),
the ready facts, and `relay.curl(...)`, which runs curl as a phone would
(`--cacert CA -u user:pass -A "<User-Agent>"`). curl runs as an asyncio
subprocess: the server lives on the test's own event loop, so a blocking
client would deadlock it.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import shutil
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from relay.app import run
from relay.config import Config
from tests.api.conftest import Api

MAC = "0004f2a1b2c3"
OTHER_MAC = "64167f0a0b0c"
# phones.md section 2, verbatim.
UA_APPLICATION = "FileTransport PolycomVVX-VVX_500-UA/5.9.7.4477 Type/Application"
UA_UPDATER = "FileTransport PolycomVVX-VVX_500-UA/5.9.7.47435 Type/Updater"
UA_SPIP_SERIAL = (
    "FileTransport PolycomSoundPointIP-SPIP_550-UA/4.0.15.1047 (SN:0004f2a1b2c3) Type/Application"
)
UA_EDGE = "FileTransport PolyEdge-Edge_E450-UA/8.0.0.15602 Type/Application"
UA_MICROBROWSER = "Microbrowser/1.1 PolycomSoundPointIP-SPIP_550-UA/4.0.15.1047 Type/Application"

CURL_TIMEOUT = 20.0
NO_AUTH: tuple[str, str] = ("", "")


@dataclass
class CurlReply:
    status: int
    body: bytes
    headers: dict[str, str]
    returncode: int
    stderr: str

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


@dataclass
class Relay:
    api: Api
    facts: dict[str, Any]
    workdir: Path
    curl_binary: str
    _counter: int = field(default=0)

    @property
    def https(self) -> str:
        return str(self.facts["provisioning"])

    @property
    def http(self) -> str:
        return str(self.facts["provisioning_http"])

    @property
    def account(self) -> tuple[str, str]:
        return str(self.facts["prov_user"]), str(self.facts["prov_password"])

    @property
    def ca_cert(self) -> str:
        return str(self.facts.get("ca_cert") or "")

    def _files(self) -> tuple[Path, Path]:
        self._counter += 1
        return (
            self.workdir / f"body-{self._counter}",
            self.workdir / f"headers-{self._counter}",
        )

    async def curl(
        self,
        method: str,
        path: str,
        *,
        user_agent: str = UA_APPLICATION,
        auth: tuple[str, str] | None = None,
        upload: Path | bytes | None = None,
        headers: Iterable[str] = (),
        extra: Iterable[str] = (),
        base: str | None = None,
        check: bool = True,
    ) -> CurlReply:
        """One phone request with curl. `path` is appended to the base URL as given
        (`--path-as-is`, so traversal attempts reach the server unchanged); `auth`
        defaults to the tenant's provisioning account, NO_AUTH sends none."""
        body_file, header_file = self._files()
        user, password = self.account if auth is None else auth
        command = [
            self.curl_binary,
            "--silent",
            "--show-error",
            "--max-time",
            "15",
            "--path-as-is",
            "-A",
            user_agent,
            "-o",
            str(body_file),
            "-D",
            str(header_file),
            "-w",
            "%{http_code}",
        ]
        if self.ca_cert:
            command += ["--cacert", self.ca_cert]
        if (user, password) != NO_AUTH:
            command += ["-u", f"{user}:{password}"]
        if method == "HEAD":
            command.append("--head")
        elif method != "GET" or upload is not None:
            command += ["-X", method]
        if upload is not None:
            if isinstance(upload, bytes):
                upload_file = body_file.with_name(body_file.name + ".up")
                upload_file.write_bytes(upload)
                upload = upload_file
            command += ["-T", str(upload)]
        for header in headers:
            command += ["-H", header]
        command += list(extra)
        command.append((base if base is not None else self.https).rstrip("/") + path)
        return await run_curl(command, body_file, header_file, check=check)


async def run_curl(
    command: list[str], body_file: Path, header_file: Path, *, check: bool = True
) -> CurlReply:
    proc = await asyncio.create_subprocess_exec(
        *command,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), CURL_TIMEOUT)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    stderr = err.decode("utf-8", "replace")
    if check:
        assert proc.returncode == 0, f"curl failed ({proc.returncode}): {stderr}"
    status = int(out.decode() or "0")
    body, headers = read_reply(body_file, header_file)
    return CurlReply(status, body, headers, proc.returncode or 0, stderr)


def read_reply(body_file: Path, header_file: Path) -> tuple[bytes, dict[str, str]]:
    """What curl wrote: the body (-o) and the headers (-D); small local files."""
    body = body_file.read_bytes() if body_file.exists() else b""
    return body, parse_headers(header_file)


def parse_headers(path: Path) -> dict[str, str]:
    """The last response's headers (a 100 Continue may come first), names lower-cased."""
    if not path.exists():
        return {}
    blocks = [b for b in re.split(r"\r?\n\r?\n", path.read_text("latin-1")) if b.strip()]
    if not blocks:
        return {}
    out: dict[str, str] = {}
    for line in blocks[-1].splitlines()[1:]:
        name, sep, value = line.partition(":")
        if sep:
            out[name.strip().lower()] = value.strip()
    return out


def make_dir(path: Path) -> None:
    path.mkdir(parents=True, exist_ok=True)


def curl_binary() -> str:
    binary = shutil.which("curl")
    if binary is None:
        pytest.skip("curl not installed (apt-get install curl)")
    return binary


@contextlib.asynccontextmanager
async def running_relay(
    data_dir: Path, workdir: Path, binary: str, **overrides: Any
) -> AsyncIterator[Relay]:
    """`relay up` in-process (REST API, HTTPS and HTTP provisioning) on free ports."""
    values: dict[str, Any] = {"prov_http": True, "agent": False, **overrides}
    config = Config(data_dir=data_dir, free_ports=True, **values)
    make_dir(workdir)
    ready: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
    stop = asyncio.Event()

    async def stopped() -> None:
        await stop.wait()

    task = asyncio.create_task(run(config, ready.set_result, stopped))
    try:
        facts = await asyncio.wait_for(asyncio.shield(ready), 30)
        async with aiohttp.ClientSession() as session:
            api = Api(facts["api"], facts["token"], session, config.data_dir)
            yield Relay(api, facts, workdir, binary)
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)


RelayFactory = Callable[..., contextlib.AbstractAsyncContextManager[Relay]]


async def settle_after_shutdown() -> None:
    """What `asyncio.run` does at exit and the test loop only after the leak checks.

    aiohttp keeps a connection task alive after the server stopped when it refused an
    upload mid-body (413): it "lingers", draining the unread body, up to 10 s, even
    once the client is gone. Those are cancelled here, after a short grace; any other
    leftover task is left for the leak check. Then the default executor the service
    reads files through (asyncio.to_thread, FileResponse) is stopped.
    """
    current = asyncio.current_task()
    pending = [t for t in asyncio.all_tasks() if t is not current and not t.done()]
    if pending:
        await asyncio.wait(pending, timeout=0.2)
    lingering = [
        t
        for t in pending
        if not t.done() and getattr(t.get_coro(), "__qualname__", "") == "RequestHandler.start"
    ]
    for task in lingering:
        task.cancel()
    if lingering:
        await asyncio.wait(lingering, timeout=2.0)
    await asyncio.get_running_loop().shutdown_default_executor()


@pytest.fixture
async def relay_up(tmp_path: Path) -> AsyncIterator[RelayFactory]:
    """Start a relay with Config overrides: `async with relay_up(trusted_proxies=...)`."""
    binary = curl_binary()
    count = 0

    def start(**overrides: Any) -> contextlib.AbstractAsyncContextManager[Relay]:
        nonlocal count
        count += 1
        return running_relay(
            tmp_path / f"data{count}", tmp_path / f"curl{count}", binary, **overrides
        )

    yield start
    await settle_after_shutdown()


@pytest.fixture
async def relay(relay_up: RelayFactory) -> AsyncIterator[Relay]:
    """A relay with the default configuration (plus the plain-HTTP listener)."""
    async with relay_up() as running:
        yield running


async def activity(relay: Relay, op: str) -> list[dict[str, Any]]:
    """This week's activity entries of one operation."""
    reply = await relay.api.get("/activity")
    assert reply.status == 200, reply.text
    return [e for e in reply.body["entries"] if e["op"] == op]


def attributes(data: bytes) -> dict[str, str]:
    """Every `name="value"` attribute of a generated XML file (first one wins)."""
    out: dict[str, str] = {}
    for name, value in re.findall(rb'([A-Za-z_][A-Za-z0-9_.\-]*)="([^"]*)"', data):
        out.setdefault(name.decode(), value.decode())
    return out
