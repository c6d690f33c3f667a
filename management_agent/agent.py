"""The management agent at run time: heartbeats, the job channel, the phone work,
monitoring and the outbox, as five loops over one durable store.

The loops meet only through the store and two wake-up events, so any of them
can fail and retry (with backoff and jitter) without the others noticing. The
cloud being away for hours only means jobs wait there and reports wait here.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import random
import socket
import ssl
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from yarl import URL

from certs.tls import client_context
from management_agent.actions import execute
from management_agent.backoff import Backoff
from management_agent.link import CloudClient, Identity, LinkDown, Revoked
from management_agent.monitoring import poll_all
from management_agent.phone_client import PhoneClient
from management_agent.sip_notify import SipNotifier
from management_agent.store import AgentStore, QueueSizes
from relay import __version__
from relay.logs import event
from relay.sync.messages import DeviceStatus, Heartbeat, Job, ReportBatch, Target

log = logging.getLogger("agent")

P = ParamSpec("P")
T = TypeVar("T")

REPORT_BATCH = 200
STOP_GRACE = 5.0
STATUS_FILE = "status.json"
CREDENTIAL_FILE = "credential.json"
DATABASE_FILE = "agent.db"


@dataclass(frozen=True, slots=True)
class AgentSettings:
    """How the agent runs; intervals left None follow what the cloud says."""

    data_dir: Path
    phone_port: int = 443
    sip_port: int = 5060
    concurrency: int = 32
    phone_timeout: float = 10.0
    poll_wait: float = 30.0
    heartbeat_seconds: float | None = None
    monitor_seconds: float | None = None
    cloud_ca: Path | None = None


def cloud_tls(identity: Identity, ca: Path | None) -> ssl.SSLContext | None:
    """Verify an https cloud against `ca` (pinned) or the system's CAs: the one client
    policy of certs.tls, never without verification (issue 7, "TLS policy")."""
    if URL(identity.cloud).scheme != "https":
        return None
    return client_context(ca)


def own_address(cloud: str) -> str:
    """The local address that routes to the cloud (a UDP connect sends nothing)."""
    host = URL(cloud).host or "127.0.0.1"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect((host, 9))
            return str(probe.getsockname()[0])
        except OSError:
            return "127.0.0.1"


class Agent:
    def __init__(
        self,
        identity: Identity,
        settings: AgentSettings,
        *,
        download_agent: Callable[[], str] = lambda: "absent",
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
    ) -> None:
        self.identity = identity
        self.settings = settings
        self._download_agent = download_agent
        self._clock = clock
        self._rng = rng or random.Random()
        self._started = time.monotonic()
        self._address = own_address(identity.cloud)
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="agent-store")
        self._store: AgentStore | None = None
        self._jobs_ready = asyncio.Event()
        self._reports_ready = asyncio.Event()
        self._monitor_now = asyncio.Event()
        self._watch: dict[str, Target] = {}
        self._running: dict[int, asyncio.Task[None]] = {}
        self._phone_order: dict[str, asyncio.Lock] = {}
        self.state: dict[str, Any] = {
            "relay_id": identity.relay_id,
            "cloud": identity.cloud,
            "tenant": identity.tenant,
            "link": "connecting",
            "link_error": None,
            "last_heartbeat": None,
            "site": None,
            "heartbeat_seconds": settings.heartbeat_seconds or 120.0,
            "monitor_seconds": settings.monitor_seconds or 7200.0,
            "last_monitor": None,
            "monitored_devices": 0,
            "jobs_done": 0,
            "pid": os.getpid(),
        }

    async def _db(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, lambda: fn(*args, **kwargs))

    @property
    def store(self) -> AgentStore:
        assert self._store is not None
        return self._store

    async def sizes(self) -> QueueSizes:
        return await self._db(self.store.sizes)

    async def run(self) -> None:
        """Run until cancelled; raises `Revoked` when the cloud no longer knows this relay."""
        # Opened here, not in the pool: a cancellation must never lose the open handle.
        self._store = AgentStore(self.settings.data_dir / DATABASE_FILE)
        client = CloudClient(self.identity, cloud_tls(self.identity, self.settings.cloud_ca))
        phones = PhoneClient(
            port=self.settings.phone_port,
            timeout=self.settings.phone_timeout,
            concurrency=self.settings.concurrency,
        )
        sip = SipNotifier(sip_port=self.settings.sip_port, local_host=self._address)
        try:
            interrupted = await self._db(self.store.interrupt_running, self._clock())
            if interrupted:
                event(log, "jobs_interrupted", logging.WARNING, count=interrupted)
            event(log, "agent_started", relay_id=self.identity.relay_id, cloud=self.identity.cloud)
            self._jobs_ready.set()
            self._reports_ready.set()
            async with asyncio.TaskGroup() as group:
                group.create_task(self._heartbeats(client))
                group.create_task(self._fetch_jobs(client))
                group.create_task(self._execute_jobs(phones, sip))
                group.create_task(self._send_reports(client))
                group.create_task(self._monitor(client, phones))
        except* Revoked as caught:
            self.state["link"] = "revoked"
            raise caught.exceptions[0] from None
        finally:
            await self._drain()
            await client.aclose()
            await phones.aclose()
            await sip.aclose()
            await self._write_status()
            await self._db(self.store.close)
            self._pool.shutdown(wait=True)
            event(log, "agent_stopped", relay_id=self.identity.relay_id)

    async def _drain(self) -> None:
        """Let jobs already on a phone finish briefly; the rest are cancelled and
        reported interrupted at the next start (never run twice)."""
        running = [t for t in self._running.values() if not t.done()]
        if running:
            await asyncio.wait(running, timeout=STOP_GRACE)
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)

    def _link_down(self, what: str, exc: Exception) -> None:
        if self.state["link"] != "down" or self.state["link_error"] != str(exc):
            event(log, "link_down", logging.WARNING, during=what, error=str(exc))
        self.state["link"] = "down"
        self.state["link_error"] = str(exc)

    def _link_up(self) -> None:
        if self.state["link"] != "up":
            event(log, "link_up", relay_id=self.identity.relay_id)
        self.state["link"] = "up"
        self.state["link_error"] = None

    async def _sleep(self, seconds: float, wake: asyncio.Event | None = None) -> None:
        if wake is None:
            await asyncio.sleep(seconds)
            return
        # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation
        # that arrives as the event is set (CPython gh-86296), hanging shutdown.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await wake.wait()

    # -- heartbeats ------------------------------------------------------------

    async def _heartbeats(self, client: CloudClient) -> None:
        backoff = Backoff(rng=self._rng)
        while True:
            beat = Heartbeat(
                version=__version__,
                addresses=(self._address,),
                uptime=round(time.monotonic() - self._started, 1),
                download_agent=self._download_agent(),
            )
            try:
                settings = await client.heartbeat(beat)
            except LinkDown as exc:
                self._link_down("heartbeat", exc)
                await self._sleep(min(backoff.next_delay(), self.state["heartbeat_seconds"]))
                continue
            backoff.reset()
            self._link_up()
            self.state["last_heartbeat"] = self._clock()
            self.state["site"] = settings.site
            self.state["heartbeat_seconds"] = (
                self.settings.heartbeat_seconds or settings.heartbeat_seconds
            )
            if self.settings.monitor_seconds is None:
                self.state["monitor_seconds"] = settings.monitor_seconds
            await self._write_status()
            await asyncio.sleep(self.state["heartbeat_seconds"])

    # -- jobs ------------------------------------------------------------------

    async def _fetch_jobs(self, client: CloudClient) -> None:
        backoff = Backoff(rng=self._rng)
        cursor = await self._db(self.store.cursor)
        while True:
            try:
                batch = await client.jobs(cursor, self.settings.poll_wait)
            except LinkDown as exc:
                self._link_down("jobs", exc)
                await self._sleep(backoff.next_delay())
                continue
            backoff.reset()
            self._link_up()
            if batch.jobs:
                cursor = await self._db(self.store.store_jobs, batch.jobs, self._clock())
                event(log, "jobs_received", count=len(batch.jobs), cursor=cursor)
                self._jobs_ready.set()
                await self._write_status()

    async def _execute_jobs(self, phones: PhoneClient, sip: SipNotifier) -> None:
        started = 0  # jobs arrive in increasing seq: each look reads only the new ones
        while True:
            await self._jobs_ready.wait()
            self._jobs_ready.clear()
            for job in await self._db(self.store.pending_jobs, started):
                started = job.seq
                # Jobs for one phone run in the order the cloud numbered them.
                order = self._phone_order.setdefault(job.device.mac, asyncio.Lock())
                task = asyncio.create_task(self._run_job(job, order, phones, sip))
                self._running[job.seq] = task

    async def _run_job(
        self, job: Job, order: asyncio.Lock, phones: PhoneClient, sip: SipNotifier
    ) -> None:
        try:
            async with order:
                if not await self._db(self.store.start_job, job.seq):
                    return
                result = await execute(job, phones, sip)
                await self._db(self.store.finish_job, result, self._clock())
            event(
                log,
                "job_done",
                job=job.seq,
                task=job.task_id,
                type=job.type,
                device=job.device.mac,
                result=result.result,
                reason=result.reason,
            )
            self.state["jobs_done"] += 1
            self._reports_ready.set()
            if not _restarts(job):
                self._watch.setdefault(job.device.mac, job.device)
                self._monitor_now.set()
        finally:
            self._running.pop(job.seq, None)

    # -- reports ---------------------------------------------------------------

    async def _send_reports(self, client: CloudClient) -> None:
        backoff = Backoff(rng=self._rng)
        while True:
            reports = await self._db(self.store.reports, REPORT_BATCH)
            if not reports:
                self._reports_ready.clear()
                await self._sleep(5.0, self._reports_ready)
                continue
            try:
                acked = await client.send_reports(ReportBatch(tuple(reports)))
            except LinkDown as exc:
                self._link_down("reports", exc)
                await self._sleep(backoff.next_delay())
                continue
            backoff.reset()
            self._link_up()
            await self._db(self.store.acknowledge, acked)
            await self._write_status()

    # -- monitoring ------------------------------------------------------------

    async def _monitor(self, client: CloudClient, phones: PhoneClient) -> None:
        """Every monitor interval, poll every phone this relay watches; right after a
        task, poll the phones that task touched (cloud.md "Device monitor")."""
        backoff = Backoff(rng=self._rng)
        due = 0.0
        while True:
            if time.monotonic() >= due:
                try:
                    watchlist = await client.watchlist()
                except LinkDown as exc:
                    self._link_down("watchlist", exc)
                    await self._sleep(backoff.next_delay())
                    continue
                backoff.reset()
                if self.settings.monitor_seconds is None:
                    self.state["monitor_seconds"] = watchlist.monitor_seconds
                targets = list(watchlist.devices)
                self._watch.clear()
                due = time.monotonic() + self.state["monitor_seconds"]
            else:
                targets = list(self._watch.values())
                self._watch.clear()
            if targets:
                await poll_all(targets, phones, self._clock(), self._on_status)
                self.state["last_monitor"] = self._clock()
                self.state["monitored_devices"] = len(targets)
                await self._write_status()
            self._monitor_now.clear()
            await self._sleep(max(0.0, due - time.monotonic()), self._monitor_now)

    async def _on_status(self, status: DeviceStatus) -> None:
        await self._db(self.store.queue_status, status, self._clock())
        self._reports_ready.set()

    # -- status file -----------------------------------------------------------

    async def _write_status(self) -> None:
        """`relay agent status` reads this file (and the queues) from another process."""
        state = dict(self.state)
        state["written"] = self._clock()
        path = self.settings.data_dir / STATUS_FILE
        await self._db(_write_json, path, state)


def _restarts(job: Job) -> bool:
    """A phone told to restart is offline for a while: polling it right after would
    only report it offline. Its next provisioning contact shows it online again."""
    return job.type in ("reboot", "reset") or (
        job.type == "check_sync" and bool(job.options.get("reboot"))
    )


def _write_json(path: Path, value: dict[str, Any]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(value, sort_keys=True))
    tmp.replace(path)
