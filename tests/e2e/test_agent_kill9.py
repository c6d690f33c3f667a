"""Issue 4 "Bad input and faults": killing the agent or the cloud at any moment loses
no task and no result, and runs nothing twice.

The cloud (`relay up --no-agent`) and a standalone agent (`relay agent run`) are
real processes, killed with SIGKILL in a loop while a check-sync task runs on
500 simulated phones (in this process, so each phone's count of check-syncs
received can be read). When the loop ends, the task must reach Done with one
result per phone; no phone may have received the check-sync twice; every
phone that received it reports success or "interrupted by a relay restart"
(a job cut off mid-way is reported, never repeated); and every phone reported
as a success did receive it.
"""

from __future__ import annotations

import asyncio
import random
import signal
import socket
from pathlib import Path
from typing import Any

import aiohttp

from management_agent.store import INTERRUPTED
from relay.sim.fleet import Fleet
from tests.e2e.conftest import RelayCli, RelayProcess, run_relay
from tests.ports import free_port

PHONES = 500
KILLS = 8
DONE_TIMEOUT = 120.0


async def _api(facts: dict[str, Any], method: str, path: str, body: Any = None) -> Any:
    headers = {"Authorization": f"Bearer {facts['token']}"}
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, facts["api"] + path, json=body, headers=headers) as reply,
    ):
        assert reply.status < 300, (path, reply.status, await reply.text())
        return await reply.json()


async def _kill(process: RelayProcess) -> None:
    process.proc.send_signal(signal.SIGKILL)
    await asyncio.to_thread(process.proc.wait, 10)


async def test_kill_9_in_a_loop_loses_no_task_and_no_result_and_runs_nothing_twice(
    relay_cli: RelayCli, tmp_path: Path
) -> None:
    rest_port, sip_port = free_port(socket.SOCK_STREAM), free_port(socket.SOCK_DGRAM)
    cloud_args = (
        "up",
        "--json",
        "--no-agent",
        "--api-port",
        str(free_port(socket.SOCK_STREAM)),
        "--prov-port",
        str(free_port(socket.SOCK_STREAM)),
        "--heartbeat-seconds",
        "2",
    )
    cloud_dir, agent_dir = tmp_path / "cloud", tmp_path / "agent"

    async def start_cloud() -> RelayProcess:
        process = relay_cli(*cloud_args, data_dir=cloud_dir)
        await asyncio.to_thread(process.ready)
        return process

    def start_agent() -> RelayProcess:
        return relay_cli(
            "agent",
            "run",
            "--phone-port",
            str(rest_port),
            "--sip-port",
            str(sip_port),
            "--log-format",
            "json",
            data_dir=agent_dir,
        )

    cloud = await start_cloud()
    facts = cloud.facts
    registered = await asyncio.to_thread(
        run_relay,
        tmp_path,
        "agent",
        "register",
        "--cloud",
        facts["api"],
        "--tenant",
        facts["tenant"],
        "--pin",
        facts["pin"],
        "--data-dir",
        str(agent_dir),
    )
    assert registered.returncode == 0, registered.stderr
    fleet = Fleet.build(
        PHONES,
        [facts["provisioning"]],
        user=facts["prov_user"],
        password=facts["prov_password"],
        cacert=facts["ca_cert"],
        first_ip="127.23.0.1",
        rest_port=rest_port,
        sip_port=sip_port,
        concurrency=100,
    )
    async with fleet:
        booted = await fleet.boot_all(timeout=120)
        assert booted["provisioned"] == PHONES, booted
        agent = start_agent()
        macs = [p.mac for p in fleet.phones]
        task = await _api(
            facts,
            "POST",
            "/tasks",
            {"type": "check_sync", "targets": {"devices": macs}, "when": "now"},
        )
        rng = random.Random(4)
        for kill in range(KILLS):
            await asyncio.sleep(rng.uniform(0.2, 1.5))
            if kill % 2 == 0:
                await _kill(agent)
                agent = start_agent()
            else:
                await _kill(cloud)
                cloud = await start_cloud()

        async def done() -> dict[str, Any]:
            while True:
                current: dict[str, Any] = await _api(facts, "GET", f"/tasks/{task['id']}")
                if current["status"] == "done":
                    return current
                await asyncio.sleep(0.5)

        try:
            final = await asyncio.wait_for(done(), DONE_TIMEOUT)
        except TimeoutError:
            current = await _api(facts, "GET", f"/tasks/{task['id']}")
            pending = current.get("pending", [])
            shown = {k: v for k, v in current.items() if k not in ("results", "pending", "targets")}
            raise AssertionError(
                f"task not done: {shown} "
                f"pending={pending[:5]} ({len(pending)}) "
                f"agent log tail={agent.stderr()[-3000:]} cloud log tail={cloud.stderr()[-2000:]}"
            ) from None
        received = {p.mac: p.check_syncs for p in fleet.phones}
        # No agent connection may be left mid-handshake when the phones close.
        await asyncio.to_thread(agent.close)

    # asyncio.to_thread's worker threads end with the test.
    await asyncio.get_running_loop().shutdown_default_executor()
    results = {r["device"]: r for r in final["results"]}
    assert len(final["results"]) == len(results) == PHONES == final["total"]
    assert final["success"] + final["failure"] == PHONES
    twice = {mac: n for mac, n in received.items() if n > 1}
    assert not twice, f"phones that received the check-sync twice: {twice}"
    for mac, result in results.items():
        if result["result"] == "success":
            assert received[mac] == 1, (mac, result)
        else:
            assert result["reason"] == INTERRUPTED or "offline" in result["reason"], result
    lost = [m for m, r in results.items() if received[m] == 1 and r["result"] != "success"]
    assert len(lost) <= KILLS * 40, f"too many jobs cut off by kills: {len(lost)}"
