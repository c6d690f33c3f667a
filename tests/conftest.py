"""Fixtures every test gets: fail on leaked asyncio tasks, threads and file descriptors."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

GRACE_SECONDS = 2.0


def _open_fds() -> dict[int, str]:
    out: dict[int, str] = {}
    for entry in Path("/proc/self/fd").iterdir():
        try:
            out[int(entry.name)] = str(entry.readlink())
        except OSError:
            continue
    return out


def _wait_for(check: object, deadline: float) -> list[str]:
    assert callable(check)
    while True:
        leaked: list[str] = check()
        if not leaked or time.monotonic() > deadline:
            return leaked
        time.sleep(0.02)


@pytest.fixture(autouse=True)
def no_leaked_threads_or_files() -> Iterator[None]:
    threads = set(threading.enumerate())
    fds = _open_fds()
    yield
    deadline = time.monotonic() + GRACE_SECONDS

    def new_threads() -> list[str]:
        return [t.name for t in threading.enumerate() if t not in threads and t.is_alive()]

    def new_fds() -> list[str]:
        now = _open_fds()
        return [f"{fd}->{target}" for fd, target in now.items() if fds.get(fd) != target]

    leaked_threads = _wait_for(new_threads, deadline)
    leaked_fds = _wait_for(new_fds, deadline)
    assert not leaked_threads, f"test leaked threads: {leaked_threads}"
    assert not leaked_fds, f"test leaked file descriptors: {leaked_fds}"


@pytest.fixture(autouse=True)
async def no_leaked_tasks() -> AsyncIterator[None]:
    yield
    current = asyncio.current_task()
    leaked = [t for t in asyncio.all_tasks() if t is not current and not t.done()]
    for task in leaked:
        task.cancel()
    assert not leaked, f"test leaked asyncio tasks: {leaked}"
