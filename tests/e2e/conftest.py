"""`relay` as a user runs it: a real subprocess, its stdout read with a deadline.

Every process started through `relay_cli` is stopped (SIGTERM, then SIGKILL) and
waited for, and its stdout pipe closed, when the test ends. Its stderr goes to a
file in the test's tmp directory, so a chatty process can never block on a full
pipe, and the test reads the whole log once the process has exited.
"""

from __future__ import annotations

import asyncio
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from relay.app import run
from relay.config import Config
from relay.sim.fleet import Fleet
from tests.api.conftest import Api

READY_TIMEOUT = 20.0
EXIT_TIMEOUT = 15.0


def relay_command() -> list[str]:
    """The installed `relay` console script (the venv's first), else `python -m relay.cli`."""
    beside = Path(sys.executable).with_name("relay")
    if beside.is_file():
        return [str(beside)]
    found = shutil.which("relay")
    if found:
        return [found]
    return [sys.executable, "-m", "relay.cli"]


def clean_env(home: Path) -> dict[str, str]:
    """The caller's environment without RELAY_* settings, with HOME in the test's tmp dir."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELAY_")}
    env["HOME"] = str(home)
    return env


@dataclass
class RelayProcess:
    proc: subprocess.Popen[bytes]
    stderr_path: Path
    data_dir: Path
    out: bytes = b""
    facts: dict[str, Any] = field(default_factory=dict)

    def read_stdout_until(self, done: Callable[[bytes], bool], timeout: float) -> bytes:
        """Read stdout until `done(everything so far)`, EOF or the deadline; return it all."""
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + timeout
        while not done(self.out):
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(
                    f"relay printed no complete answer within {timeout}s; stdout={self.out!r} "
                    f"stderr={self.stderr()!r}"
                )
            readable, _, _ = select.select([fd], [], [], left)
            if not readable:
                continue
            chunk = os.read(fd, 65536)
            if not chunk:
                break
            self.out += chunk
        return self.out

    def ready(self, timeout: float = READY_TIMEOUT) -> dict[str, Any]:
        """The JSON ready line (the first stdout line under --json)."""
        out = self.read_stdout_until(lambda b: b"\n" in b, timeout)
        line, newline, _ = out.partition(b"\n")
        assert newline, f"relay exited before it was ready: rc={self.proc.poll()} " + (
            f"stdout={out!r} stderr={self.stderr()!r}"
        )
        facts = json.loads(line)
        assert isinstance(facts, dict)
        self.facts = facts
        return facts

    def stop(self, sig: signal.Signals = signal.SIGTERM, timeout: float = EXIT_TIMEOUT) -> int:
        """Send `sig` and return the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout=timeout)

    def stderr(self) -> str:
        try:
            return self.stderr_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def close(self) -> None:
        """Stop (politely, then not) and release every descriptor."""
        try:
            if self.proc.poll() is None:
                self.proc.terminate()
                try:
                    self.proc.wait(timeout=EXIT_TIMEOUT)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(timeout=EXIT_TIMEOUT)
        finally:
            if self.proc.stdout is not None:
                self.proc.stdout.close()


RelayCli = Callable[..., RelayProcess]


@pytest.fixture
def relay_cli(tmp_path: Path) -> Iterator[RelayCli]:
    """Start `relay <args>`; `relay_cli("up", "--json", data_dir=...)` returns the process."""
    started: list[RelayProcess] = []

    def start(*args: str, data_dir: Path | None = None) -> RelayProcess:
        data_dir = data_dir or tmp_path / "data"
        stderr_path = tmp_path / f"stderr-{len(started)}.log"
        with stderr_path.open("wb") as stderr:
            proc = subprocess.Popen(
                [*relay_command(), *args, "--data-dir", str(data_dir)],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=stderr,
                env=clean_env(tmp_path),
                cwd=tmp_path,
            )
        process = RelayProcess(proc, stderr_path, data_dir)
        started.append(process)
        return process

    try:
        yield start
    finally:
        for process in started:
            process.close()


@pytest.fixture
def relay_up(relay_cli: RelayCli) -> Callable[..., RelayProcess]:
    """`relay up --json --free-ports [extra]`, already past its ready line."""

    def start(*extra: str, data_dir: Path | None = None) -> RelayProcess:
        process = relay_cli("up", "--json", "--free-ports", *extra, data_dir=data_dir)
        process.ready()
        return process

    return start


def run_relay(
    tmp_path: Path, *args: str, timeout: float = 30.0
) -> subprocess.CompletedProcess[str]:
    """Run a `relay` command to completion (its pipes are closed by subprocess.run)."""
    return subprocess.run(
        [*relay_command(), *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=clean_env(tmp_path),
        cwd=tmp_path,
        timeout=timeout,
        check=False,
    )


@dataclass
class Http:
    status: int
    body: Any
    text: str


def http(
    method: str, url: str, token: str | None = None, body: Any = None, timeout: float = 10.0
) -> Http:
    """One request with urllib; every response (errors included) is read and closed."""
    headers = {"Accept": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    request = urllib.request.Request(url, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            status, raw, ctype = resp.status, resp.read(), resp.headers.get_content_type()
    except urllib.error.HTTPError as exc:
        with exc:
            status, raw, ctype = exc.code, exc.read(), exc.headers.get_content_type()
    text = raw.decode("utf-8", "replace")
    parsed = json.loads(raw) if ctype == "application/json" and raw else None
    return Http(status, parsed, text)


def port_is_closed(url: str) -> bool:
    """True if nothing accepts connections at the host:port of `url` any more."""
    hostport = url.split("//", 1)[1].split("/", 1)[0]
    host, _, port = hostport.rpartition(":")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(2)
        return sock.connect_ex((host, int(port))) != 0


@dataclass
class Service:
    facts: dict[str, Any]
    api: Api

    def fleet(self, count: int) -> Fleet:
        return Fleet.build(
            count,
            [self.facts["provisioning"]],
            user=self.facts["prov_user"],
            password=self.facts["prov_password"],
            cacert=self.facts["ca_cert"],
        )


@pytest.fixture
async def service(tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[Service]:
    """`relay up` in-process on free loopback ports, with a fresh data directory; an
    indirect parameter holds configuration keys to change."""
    changed: dict[str, Any] = getattr(request, "param", {})
    config = Config(data_dir=tmp_path / "data", free_ports=True, **changed)
    ready: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
    stop = asyncio.Event()

    async def stopped() -> None:
        await stop.wait()

    task = asyncio.create_task(run(config, ready.set_result, stopped))
    try:
        facts = await asyncio.wait_for(asyncio.shield(ready), 30)
        assert facts["prov_user"] and facts["prov_password"], facts
        async with aiohttp.ClientSession() as session:
            yield Service(facts, Api(facts["api"], facts["token"], session, config.data_dir))
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
        # The service streams files with asyncio.to_thread: join the loop's executor
        # threads now rather than leave them to the loop's own shutdown.
        await asyncio.get_running_loop().shutdown_default_executor()
