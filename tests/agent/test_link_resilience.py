"""Nothing is lost or run twice across an outage and a restart of either side.

The whole appliance (`relay.app.run`: the cloud and its embedded agent) runs
in-process on fixed loopback ports so it can be stopped and started again on
the same address, beside a second, standalone agent and simulated phones that
serve the phone REST API. Each phone counts the check-syncs it received.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from management_agent.agent import Agent, AgentSettings
from management_agent.link import register
from relay.app import run
from relay.config import Config
from relay.sim.fleet import Fleet
from relay.sync.messages import Registration
from tests.ports import free_port

PHONES = 4


class Appliance:
    """`relay.app.run` in a task; `start()` again after `stop()` reuses its ports and data."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.facts: dict[str, Any] = {}
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> dict[str, Any]:
        ready = asyncio.Event()

        def emit(facts: dict[str, Any]) -> None:
            if facts.get("event") == "ready":
                self.facts = facts
                ready.set()

        self._stop = asyncio.Event()
        self._task = asyncio.create_task(run(self.config, emit, self._stop.wait))
        waiter = asyncio.create_task(ready.wait())
        await asyncio.wait({waiter, self._task}, return_when=asyncio.FIRST_COMPLETED)
        if not ready.is_set():
            waiter.cancel()
            await self._task  # raises what stopped it
        return self.facts

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            await self._task
            self._task = None

    async def call(self, method: str, path: str, body: Any = None) -> Any:
        headers = {"Authorization": f"Bearer {self.facts['token']}"}
        async with (
            aiohttp.ClientSession() as session,
            session.request(method, self.facts["api"] + path, json=body, headers=headers) as r,
        ):
            assert r.status < 300, (path, r.status, await r.text())
            return await r.json()


@pytest.fixture
async def appliance(tmp_path: Path) -> AsyncIterator[Appliance]:
    config = Config(
        data_dir=tmp_path / "relay",
        api_port=free_port(socket.SOCK_STREAM),
        prov_port=free_port(socket.SOCK_STREAM),
        phone_rest_port=free_port(socket.SOCK_STREAM),
        phone_sip_port=free_port(socket.SOCK_DGRAM),
        heartbeat_seconds=1.0,
    )
    running = Appliance(config)
    await running.start()
    try:
        yield running
    finally:
        await running.stop()


async def _task_done(appliance: Appliance, task_id: str, seconds: float) -> dict[str, Any]:
    async with asyncio.timeout(seconds):
        while True:
            with contextlib.suppress(aiohttp.ClientError, AssertionError):
                task: dict[str, Any] = await appliance.call("GET", f"/tasks/{task_id}")
                if task["status"] == "done":
                    return task
            await asyncio.sleep(0.2)


# Phones re-provision right after their check-sync, so the appliance stops while some
# are in their TLS handshake with it; Python 3.11's asyncio servers do not track such
# connections (Server.close_clients arrives in 3.13), and the garbage collector closes
# them with a ResourceWarning. The fd-leak fixture still checks that none outlives the test.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
async def test_a_task_survives_a_cloud_restart_and_runs_once_per_phone(
    appliance: Appliance, tmp_path: Path
) -> None:
    facts = appliance.facts
    config = appliance.config
    fleet = Fleet.build(
        PHONES,
        [facts["provisioning"]],
        user=facts["prov_user"],
        password=facts["prov_password"],
        cacert=facts["ca_cert"],
        first_ip="127.21.0.1",
        rest_port=config.phone_rest_port,
        sip_port=config.phone_sip_port,
    )
    identity = await register(
        facts["api"],
        Registration(facts["tenant"], facts["pin"], "standalone", "test", ("127.0.0.1",)),
    )
    standalone = Agent(
        identity,
        AgentSettings(
            data_dir=tmp_path / "standalone",
            phone_port=config.phone_rest_port,
            sip_port=config.phone_sip_port,
            poll_wait=2.0,
        ),
    )
    async with fleet:
        summary = await fleet.boot_all(timeout=60)
        assert summary["provisioned"] == PHONES, summary
        agent = asyncio.create_task(standalone.run())
        try:
            macs = [p.mac for p in fleet.phones]
            before = {p.mac: p.check_syncs for p in fleet.phones}
            for phone in fleet.phones:
                phone.set_busy(2.0)  # the jobs are still on the phones when the cloud stops
            created = await appliance.call(
                "POST",
                "/tasks",
                {"type": "check_sync", "targets": {"devices": macs}, "when": "now"},
            )
            await asyncio.sleep(1.0)
            await appliance.stop()
            await asyncio.sleep(2.0)
            await appliance.start()
            task = await _task_done(appliance, created["id"], seconds=60)
            assert (task["total"], task["success"]) == (PHONES, PHONES), task
            assert sorted(r["device"] for r in task["results"]) == sorted(macs)
            after = {p.mac: p.check_syncs for p in fleet.phones}
            assert all(after[m] == before[m] + 1 for m in macs), (before, after)
        finally:
            agent.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await agent
