"""The management agent and the cloud's agent link at fleet scale (issue 4's measurements).

1. **Reboot task through one agent**: N simulated phones (their own processes),
   the cloud (`relay up --no-agent`, a subprocess) and one standalone agent
   (`relay agent run`, a subprocess, so its memory and CPU are its own). Time
   from `POST /api/v1/tasks` to status `done` with every per-device result,
   success/failure counts, the agent's peak RSS (VmHWM), CPU seconds of the
   agent, the cloud and the phones, then the phones' re-provisioning after
   their reboot (part of the load the cloud sees).
2. **Monitoring pass over N phones**: the agent polls device/info, lineInfo and
   callStatus of every phone; a pass starts with the watchlist request (seen in
   the cloud's JSON access log) and ends at the agent's `last_monitor`. The
   first agent run (`--monitor-seconds` small) gives a cold pass (auth schemes
   not yet learnt) and a warm one; the second run (the reboot run) starts with
   another cold pass.
3. **Cloud side**: 1,000 relays register through `POST /api/v1/agent/register`,
   keep a jobs long-poll open each, heartbeat (at the real rate, 1,000 per
   2 minutes, then all 1,000 every 10 s) and send 10,000 reports a minute (one
   per POST: results of real jobs of real tasks, then device statuses):
   request latency p50/p95/p99 and the cloud's CPU seconds per minute.

There is no other implementation of the agent to run side by side, so the
figures are compared with the issue's goals (10,000 phones: Done <= 60 s,
agent peak memory <= 300 MB). A benchmark, not a test: it asserts nothing.
Loopback only; every process it starts is stopped (SIGTERM, then SIGKILL) and
its temporary directory removed, errors included; every wait is bounded.

    .venv/bin/python bench/bench_agent.py --phones 1000            # parts 1 and 2
    .venv/bin/python bench/bench_agent.py --phones 1000,10000 --json /tmp/agent.json
    .venv/bin/python bench/bench_agent.py --parts cloud            # part 3 only
    .venv/bin/python bench/bench_agent.py --phones 1000 --py-spy .venv/bin/py-spy
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import dataclasses
import datetime as dt
import json
import math
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from bench_provisioning import (
    cpu_seconds,
    print_profiles,
    proc_status,
    profiled,
    raise_nofile,
    relay_cli,
    reset_peak_rss,
)
from report import Report, finish, machine, mib

HOST = "127.0.0.1"
PHONES_PER_PROCESS = 2_500  # 2 descriptors per phone (REST, SIP) + boot connections < 20,000
REBOOT_GOAL_S = 60.0
MEMORY_GOAL = 300 * 2**20
TICK = 0.2


@dataclass(frozen=True, slots=True)
class Scale:
    phones: tuple[int, ...]
    parts: tuple[str, ...]
    reboot_seconds: float
    busy_after_boot: float
    rest_processing: float
    boot_concurrency: int
    monitor_seconds: float
    step_timeout: float
    agents: int
    devices: int
    reports_per_minute: int
    heartbeat_fast: float
    heartbeat_real: float
    phase_seconds: float


# -- small helpers -------------------------------------------------------------------


def load() -> str:
    """The 1/5/15-minute load averages, recorded with each figure."""
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def pct(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (0 for no values)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, math.ceil(p / 100 * len(ordered)) - 1))]


def ms3(values: Sequence[float]) -> str:
    p50, p95, p99 = (pct(values, p) * 1e3 for p in (50, 95, 99))
    return f"{p50:,.1f} / {p95:,.1f} / {p99:,.1f} ms"


def free_port(kind: socket.SocketKind) -> int:
    with socket.socket(socket.AF_INET, kind) as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


def terminate(proc: subprocess.Popen[bytes] | None, grace: float = 20.0) -> int | None:
    """SIGTERM, then SIGKILL after `grace` seconds."""
    if proc is None:
        return None
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def wait_until(
    what: str, check: Callable[[], Any], timeout: float, alive: Sequence[subprocess.Popen[bytes]]
) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        for proc in alive:
            if proc.poll() is not None:
                raise RuntimeError(
                    f"{what}: a process exited early ({proc.args!r}: {proc.returncode})"
                )
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout:.0f} s")
        time.sleep(TICK)


# -- the phones' own process -------------------------------------------------------------


def phones_main(argv: Sequence[str]) -> int:
    """`bench_agent.py phones ...`: boot a slice of the fleet, then serve REST and SIP,
    writing a status file every second, until SIGTERM."""
    from relay.sim.fleet import Fleet, make_specs

    parser = argparse.ArgumentParser(prog="bench_agent.py phones")
    for name in ("total", "first", "count", "rest-port", "sip-port", "seed", "concurrency"):
        parser.add_argument(f"--{name}", type=int, required=True)
    for name in ("reboot-seconds", "busy-after-boot", "rest-processing", "boot-timeout"):
        parser.add_argument(f"--{name}", type=float, required=True)
    for name in ("server", "user", "password", "cacert", "status"):
        parser.add_argument(f"--{name}", required=True)
    parser.add_argument("--fast-boot-password", help="start provisioned (see --fast-boot)")
    args = parser.parse_args(argv)
    raise_nofile()
    specs = make_specs(
        args.total,
        [args.server],
        user=args.user,
        password=args.password,
        cacert=args.cacert,
        seed=args.seed,
        rest_port=args.rest_port,
        sip_port=args.sip_port,
    )[args.first : args.first + args.count]
    specs = [
        dataclasses.replace(
            s,
            reboot_seconds=args.reboot_seconds,
            busy_after_boot=args.busy_after_boot,
            rest_processing=args.rest_processing,
        )
        for s in specs
    ]
    fleet = Fleet(specs, concurrency=args.concurrency, seed=args.seed)
    status_path = Path(args.status)
    facts: dict[str, Any] = {"phase": "booting"}

    def write() -> None:
        phones = fleet.phones
        state = collections.Counter(p.state for p in phones)
        value = {
            **facts,
            "phones": len(phones),
            "rest_phones": sum(1 for p in phones if p.rest_address is not None),
            "online": sum(1 for p in phones if p.online),
            "provisioned": state["provisioned"],
            "failed": state["failed"],
            "booting": state["booting"],
            "restarts": sum(p.restarts for p in phones),
            "rebooted_back": sum(
                1 for p in phones if p.restarts and p.online and p.state == "provisioned"
            ),
            "rebooted_failed": sum(1 for p in phones if p.restarts and p.state == "failed"),
            "rest_requests": sum(len(p.rest_requests) for p in phones),
            "errors_now": [e for p in phones for e in p.report().errors][:10]
            if state["failed"]
            else [],
            "written": time.time(),
        }
        tmp = status_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(value))
        tmp.replace(status_path)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)

        async def writer() -> None:
            while True:
                write()
                await asyncio.sleep(1.0)

        async with fleet:
            ticker = asyncio.create_task(writer())
            started = time.monotonic()
            if args.fast_boot_password:
                booting = asyncio.create_task(fast_boot(fleet, args.fast_boot_password))
            else:
                booting = asyncio.create_task(fleet.boot_all(timeout=args.boot_timeout))
            await asyncio.wait(
                {booting, asyncio.create_task(stop.wait())}, return_when="FIRST_COMPLETED"
            )
            if booting.done():
                summary = booting.result()
                facts.update(
                    phase="serving",
                    boot_wall=time.monotonic() - started,
                    boot_summary={k: v for k, v in summary.items() if k != "errors"},
                    boot_errors=summary["errors"][:20],
                    boot_error_count=len(summary["errors"]),
                )
                write()
                await stop.wait()
            ticker.cancel()
            booting.cancel()
            await asyncio.gather(ticker, booting, return_exceptions=True)

    asyncio.run(main())
    return 0


async def fast_boot(fleet: Any, password: str) -> dict[str, Any]:
    """--fast-boot: every phone powers on as if it had provisioned from the cloud before
    (what the cloud's default configuration gives it: the REST API on, the tenant's admin
    password) and starts serving at once, without the boot conversation. Its later
    reboots do the whole conversation with the real cloud. Uses SimPhone internals."""
    for phone in fleet.phones:
        phone.settings.provisioned(
            config_files={"apps.restapi.enabled": "1", "device.auth.localAdminPassword": password},
            phone_file={},
            web={},
        )
        phone._state = "provisioned"
        phone._powered_on_at = phone._clock.time()
        await phone._start_listeners()
        phone._online = True
    return {**fleet.counts(), "errors": [e for p in fleet.phones for e in p.report().errors]}


# -- processes of parts 1 and 2 -------------------------------------------------------------


@dataclass(slots=True)
class Procs:
    cloud: subprocess.Popen[bytes] | None = None
    agent: subprocess.Popen[bytes] | None = None
    phones: list[subprocess.Popen[bytes]] = dataclasses.field(default_factory=list)

    def cpu(self) -> dict[str, float]:
        return {
            "agent": cpu_seconds([self.agent.pid]) if self.agent else 0.0,
            "cloud": cpu_seconds([self.cloud.pid]) if self.cloud else 0.0,
            "phones": cpu_seconds([p.pid for p in self.phones]),
        }

    def stop_all(self) -> None:
        for proc in [self.agent, *self.phones]:
            with contextlib.suppress(Exception):
                terminate(proc)
        with contextlib.suppress(Exception):
            terminate(self.cloud)


def cpu_delta(after: dict[str, float], before: dict[str, float]) -> dict[str, float]:
    return {k: after[k] - before.get(k, 0.0) for k in after}


def cpu_text(d: dict[str, float], wall: float | None = None) -> str:
    text = f"{d['agent']:,.1f} / {d['cloud']:,.1f} / {d['phones']:,.1f} s"
    if wall:
        text += (
            f" ({d['agent'] / wall:.2f} / {d['cloud'] / wall:.2f} / {d['phones'] / wall:.2f} cores)"
        )
    return text


def start_cloud(
    root: Path, extra: Sequence[str] = ()
) -> tuple[subprocess.Popen[bytes], dict[str, Any]]:
    """`relay up --no-agent --free-ports --json` with JSON logs, until its ready line."""
    out_path, err_path = root / "cloud.out", root / "cloud.err"
    cmd = [
        *relay_cli(),
        "up",
        "--no-agent",
        "--free-ports",
        "--json",
        "--log-format",
        "json",
        "--data-dir",
        str(root / "cloud"),
        *extra,
    ]
    with out_path.open("wb") as out, err_path.open("wb") as err:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, cwd=root)
    ready = re.compile(r'^\{.*"event": "ready".*\}$', re.MULTILINE)

    def found() -> Any:
        return ready.search(out_path.read_text(errors="replace"))

    try:
        match = wait_until("relay up ready", found, 60, [proc])
    except Exception:
        terminate(proc)
        raise RuntimeError(err_path.read_text(errors="replace")[-2000:]) from None
    return proc, json.loads(match.group(0))


def create_devices(api: str, token: str, specs: Sequence[Any]) -> None:
    """The fleet's devices in the cloud, with the address and model a boot would record."""

    async def go() -> None:
        gate = asyncio.Semaphore(16)
        async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as session:

            async def one(spec: Any) -> None:
                body = {"mac": spec.mac, "model": spec.model, "public_ip": spec.source_ip}
                async with gate, session.post(f"{api}/devices", json=body) as response:
                    if response.status != 201:
                        raise RuntimeError(f"POST /devices: HTTP {response.status}")

            await asyncio.gather(*(one(s) for s in specs))

    asyncio.run(go())


def cloud_requests(root: Path, path: str) -> list[float]:
    """Times (epoch, when answered) of the cloud's access-log lines for `path`."""
    times = []
    with contextlib.suppress(OSError), (root / "cloud.err").open(errors="replace") as log:
        for line in log:
            if path not in line or '"request"' not in line:
                continue
            with contextlib.suppress(ValueError):
                value = json.loads(line)
                if value.get("path") == path:
                    times.append(float(value["ts"]))
    return times


def api_call(api: str, token: str, method: str, path: str, body: Any = None) -> Any:
    async def go() -> Any:
        async with (
            aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as session,
            session.request(method, api + path, json=body) as response,
        ):
            value = await response.json(content_type=None)
            if response.status >= 300:
                raise RuntimeError(f"{method} {path}: HTTP {response.status}: {value}")
            return value

    return asyncio.run(go())


def agent_status(agent_dir: Path) -> dict[str, Any]:
    done = subprocess.run(
        [*relay_cli(), "agent", "status", "--data-dir", str(agent_dir), "--json"],
        capture_output=True,
        timeout=60,
        check=False,
    )
    try:
        return dict(json.loads(done.stdout))
    except ValueError:
        return {"error": done.stderr.decode(errors="replace")[-500:]}


def agent_log_summary(path: Path) -> dict[str, Any]:
    """Counts of the agent's log events and its phone failures by reason."""
    events: collections.Counter[str] = collections.Counter()
    reasons: collections.Counter[str] = collections.Counter()
    levels: collections.Counter[str] = collections.Counter()
    with contextlib.suppress(OSError), path.open(errors="replace") as log:
        for line in log:
            try:
                value = json.loads(line)
            except ValueError:
                levels["non-json"] += 1
                continue
            events[str(value.get("event", value.get("msg", "?")))] += 1
            levels[str(value.get("level", "?"))] += 1
            if value.get("event") == "phone_request_failed":
                reason = re.sub(r"\d+(\.\d+)?", "N", str(value.get("reason", "")))[:100]
                reasons[f"{value.get('path', '')}: {reason}"] += 1
    return {
        "events": dict(events.most_common(20)),
        "levels": dict(levels),
        "phone_failures": dict(reasons.most_common(10)),
    }


def run_agent(
    agent_dir: Path,
    root: Path,
    name: str,
    rest_port: int,
    sip_port: int,
    monitor: float,
) -> subprocess.Popen[bytes]:
    cmd = [
        *relay_cli(),
        "agent",
        "run",
        "--data-dir",
        str(agent_dir),
        "--phone-port",
        str(rest_port),
        "--sip-port",
        str(sip_port),
        "--monitor-seconds",
        str(monitor),
        "--log-format",
        "json",
    ]
    with (root / f"{name}.err").open("ab") as err:
        return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, cwd=root)


def monitor_passes(status_file: Path, count: int, after: float) -> Callable[[], list[float]]:
    """A check returning the agent's `last_monitor` values seen so far (newer than
    `after`), once `count` of them are seen; polls status.json, which the agent writes."""
    seen: list[float] = []

    def check() -> list[float]:
        state = read_json(status_file) or {}
        last = state.get("last_monitor")
        if isinstance(last, (int, float)) and last > after and (not seen or last > seen[-1]):
            seen.append(float(last))
        return list(seen) if len(seen) >= count else []

    return check


def pass_bounds(root: Path, ends: Sequence[float], after: float) -> list[tuple[float, float]]:
    """(start, end) of each monitoring pass: start = the watchlist answer before its end."""
    starts = [t for t in cloud_requests(root, "/api/v1/agent/devices") if t > after]
    bounds = []
    for end in ends:
        before = [t for t in starts if t <= end]
        bounds.append((before[-1] if before else after, end))
    return bounds


class Series:
    """CPU seconds of the processes sampled over time, to cut at any moment."""

    def __init__(self, procs: Procs) -> None:
        self.procs = procs
        self.samples: list[tuple[float, dict[str, float]]] = []

    def sample(self) -> None:
        self.samples.append((time.time(), self.procs.cpu()))

    def at(self, when: float) -> dict[str, float]:
        best = min(self.samples, key=lambda s: abs(s[0] - when))
        return best[1]


def measure_fleet(n: int, scale: Scale, args: argparse.Namespace, report: Report) -> None:
    root = Path(tempfile.mkdtemp(prefix=f"bench-agent-{n}-"))
    procs = Procs()
    series = Series(procs)
    facts: dict[str, Any] = {"n": n}
    report.facts[f"fleet_{n}"] = facts
    sec = f"{n:,} phones"
    started = time.time()
    try:
        print(f"\n-- {sec}: cloud, phones, agent (work dir {root})", flush=True)
        procs.cloud, ready = start_cloud(root, ["--heartbeat-seconds", "5"])
        api, token = ready["api"], ready["token"]
        rest_port, sip_port = free_port(socket.SOCK_STREAM), free_port(socket.SOCK_DGRAM)
        fast: list[str] = []
        if args.fast_boot:
            from relay.sim.fleet import make_specs

            password = api_call(api, token, "GET", "/device-admin-password")["password"]
            fast = [f"--fast-boot-password={password}"]
            t = time.time()
            specs = make_specs(n, ["https://unused/"], seed=args.seed)
            create_devices(api, token, specs)
            report.add(
                sec,
                "setup (--fast-boot): devices created with POST /devices (16 at once)",
                f"{n:,} in {time.time() - t:,.1f} s",
            )
        per = min(PHONES_PER_PROCESS, n)
        slices = [(i, min(per, n - i)) for i in range(0, n, per)]
        boot_cpu0, boot_t0 = procs.cpu(), time.time()
        me = str(Path(__file__).resolve())
        for index, (first, count) in enumerate(slices):
            cmd = [
                sys.executable,
                me,
                "phones",
                f"--total={n}",
                f"--first={first}",
                f"--count={count}",
                f"--rest-port={rest_port}",
                f"--sip-port={sip_port}",
                f"--seed={args.seed}",
                f"--concurrency={max(1, scale.boot_concurrency // len(slices))}",
                f"--reboot-seconds={scale.reboot_seconds}",
                f"--busy-after-boot={scale.busy_after_boot}",
                f"--rest-processing={scale.rest_processing}",
                f"--boot-timeout={scale.step_timeout}",
                f"--server={ready['provisioning']}",
                f"--user={ready['prov_user']}",
                f"--password={ready['prov_password']}",
                f"--cacert={ready['ca_cert']}",
                *fast,
                f"--status={root / f'phones-{index}.json'}",
            ]
            with (root / f"phones-{index}.err").open("wb") as err:
                procs.phones.append(
                    subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, cwd=root)
                )
        status_files = [root / f"phones-{i}.json" for i in range(len(slices))]

        def phones_state() -> list[dict[str, Any]]:
            return [read_json(p) or {} for p in status_files]

        def booted() -> bool:
            series.sample()
            return all(s.get("phase") == "serving" for s in phones_state())

        wait_until("phones booted", booted, scale.step_timeout + 60, procs.phones)
        boot_wall = time.time() - boot_t0
        boot_cpu = cpu_delta(procs.cpu(), boot_cpu0)
        states = phones_state()
        provisioned = sum(s["boot_summary"]["provisioned"] for s in states)
        rest_phones = sum(s["rest_phones"] for s in states)
        errors = [e for s in states for e in s.get("boot_errors", [])]
        facts["boot"] = {"wall_s": boot_wall, "cpu": boot_cpu, "states": states, "load": load()}
        report.add(
            sec,
            f"setup: phones provisioned from the cloud ({len(slices)} sim process(es))",
            f"{provisioned:,} / {n:,} in {boot_wall:,.1f} s",
        )
        report.add(
            sec, "setup: phones with the REST API (the others have none)", f"{rest_phones:,}"
        )
        report.add(
            sec,
            "setup: CPU cloud / phones during the boot",
            f"{boot_cpu['cloud']:,.1f} / {boot_cpu['phones']:,.1f} s",
        )
        if errors:
            report.add(
                sec,
                f"setup: boot errors (first: {errors[0][:70]})",
                f"{sum(s.get('boot_error_count', 0) for s in states):,}",
            )

        agent_dir = root / "agent-data"
        done = subprocess.run(
            [
                *relay_cli(),
                "agent",
                "register",
                "--cloud",
                api,
                "--tenant",
                ready["tenant"],
                "--pin",
                ready["pin"],
                "--data-dir",
                str(agent_dir),
                "--json",
            ],
            capture_output=True,
            timeout=60,
            check=False,
        )
        if done.returncode != 0:
            raise RuntimeError(f"relay agent register failed: {done.stdout!r} {done.stderr!r}")
        status_file = agent_dir / "agent" / "status.json"

        # -- part 2: monitoring passes (run 1, --monitor-seconds small: cold, then warm)
        if "monitor" in scale.parts:
            t_start = time.time()
            procs.agent = run_agent(
                agent_dir,
                root,
                "agent-run1",
                rest_port,
                sip_port,
                scale.monitor_seconds,
            )
            check = monitor_passes(status_file, 2, t_start)

            def two() -> list[float]:
                series.sample()
                return check()

            ends = wait_until("two monitoring passes", two, 2 * scale.step_timeout, [procs.agent])
            hwm = proc_status(procs.agent.pid).get("VmHWM", 0) * 1024
            terminate(procs.agent)
            bounds = pass_bounds(root, ends, t_start)
            status = read_json(status_file) or {}
            passes = []
            devices = status.get("monitored_devices") or 0
            for label, (b0, b1) in zip(("cold", "warm"), bounds, strict=True):
                used = cpu_delta(series.at(b1), series.at(b0))
                passes.append({"label": label, "start": b0, "end": b1, "cpu": used})
                report.add(
                    sec,
                    f"monitor pass ({label}): {devices:,} devices, duration",
                    f"{b1 - b0:,.1f} s ({devices / max(b1 - b0, 1e-9):,.0f} phones/s)",
                )
                report.add(
                    sec,
                    f"monitor pass ({label}): CPU agent / cloud / phones",
                    cpu_text(used, b1 - b0),
                )
            report.add(
                sec,
                "monitor run: agent peak RSS (VmHWM)",
                mib(hwm),
                f"<= {mib(MEMORY_GOAL)}",
                hwm <= MEMORY_GOAL,
            )
            report.add(sec, "monitor run: load average at the end", load())
            facts["monitor"] = {
                "passes": passes,
                "agent_hwm": hwm,
                "status": status,
                "log": agent_log_summary(root / "agent-run1.err"),
            }
            procs.agent = None

        # -- part 1: the reboot task (run 2, the monitor interval long: one cold pass at start)
        if "reboot" in scale.parts:
            t_start = time.time()
            procs.agent = run_agent(agent_dir, root, "agent-run2", rest_port, sip_port, 86400)
            check = monitor_passes(status_file, 1, t_start)

            def one() -> list[float]:
                series.sample()
                return check()

            ends = wait_until(
                "the agent's first monitoring pass", one, scale.step_timeout, [procs.agent]
            )
            ((b0, b1),) = pass_bounds(root, ends, t_start)
            used = cpu_delta(series.at(b1), series.at(b0))
            report.add(
                sec, "monitor pass at the reboot run's start (cold): duration", f"{b1 - b0:,.1f} s"
            )
            report.add(sec, "  its CPU agent / cloud / phones", cpu_text(used, b1 - b0))
            hwm_before = proc_status(procs.agent.pid).get("VmHWM", 0) * 1024
            reset = reset_peak_rss(procs.agent.pid)
            sites = [s["name"] for s in api_call(api, token, "GET", "/sites")]
            cpu0 = procs.cpu()
            load0 = load()
            t0 = time.time()
            with profiled(args.py_spy, procs.agent.pid, args.profile_dir, f"reboot-{n}"):
                task = api_call(
                    api,
                    token,
                    "POST",
                    "/tasks",
                    {
                        "type": "reboot",
                        "name": f"bench reboot {n}",
                        "targets": {"sites": sites},
                        "when": "now",
                    },
                )
                t_created = time.time()
                progress: list[tuple[float, int, int]] = []
                peak_rss = [0]

                def task_done() -> dict[str, Any] | None:
                    series.sample()
                    rows = api_call(api, token, "GET", "/tasks?type=reboot")
                    row = next(r for r in rows if r["id"] == task["id"])
                    progress.append(
                        (time.time() - t0, row["success"] + row["failure"], row["in_progress"])
                    )
                    peak_rss[0] = max(peak_rss[0], proc_status(procs.agent.pid).get("VmRSS", 0))
                    return row if row["status"] == "done" else None

                wait_until(
                    "the reboot task done",
                    task_done,
                    scale.step_timeout,
                    [procs.agent, procs.cloud],
                )
            t_done = time.time()
            cpu_done = cpu_delta(procs.cpu(), cpu0)
            hwm = proc_status(procs.agent.pid).get("VmHWM", 0) * 1024
            full = api_call(api, token, "GET", f"/tasks/{task['id']}")
            results = collections.Counter(r["result"] for r in full["results"])
            reasons = collections.Counter(
                re.sub(r"\d+(\.\d+)?", "N", r["reason"])[:90]
                for r in full["results"]
                if r["reason"]
            )
            wall = t_done - t0
            report.add(
                sec,
                "reboot task: POST /tasks -> status done (all per-device results)",
                f"{wall:,.1f} s",
                f"<= {REBOOT_GOAL_S:.0f} s" if n >= 10_000 else "",
                wall <= REBOOT_GOAL_S if n >= 10_000 else None,
            )
            report.add(sec, "  POST /tasks answered after", f"{t_created - t0:,.2f} s")
            report.add(
                sec,
                "  results success / failure / not applicable (of total)",
                f"{results['success']:,} / {results['failure']:,} / "
                f"{results['not_applicable']:,} ({full['total']:,})",
            )
            for reason, count in reasons.most_common(3):
                report.add(sec, f"  reason x{count:,}: {reason[:60]}", "")
            report.add(sec, "  CPU agent / cloud / phones", cpu_text(cpu_done, wall))
            report.add(
                sec,
                "  agent peak RSS (VmHWM" + (", reset before the task)" if reset else ")"),
                mib(hwm),
                f"<= {mib(MEMORY_GOAL)}",
                hwm <= MEMORY_GOAL,
            )
            report.add(
                sec, "  agent peak RSS before the task (start + monitor pass)", mib(hwm_before)
            )
            report.add(sec, "  load average before / at done", f"{load0} / {load()}")

            # re-provisioning after the reboots: until every rebooted phone is back
            rebooted = results["success"]

            def back() -> bool:
                series.sample()
                states = phones_state()
                return (
                    sum(s.get("rebooted_back", 0) + s.get("rebooted_failed", 0) for s in states)
                    >= rebooted
                )

            with contextlib.suppress(TimeoutError):
                wait_until("phones back after the reboot", back, args.back_timeout, procs.phones)
            t_back = time.time()
            states = phones_state()
            back_ok = sum(s.get("rebooted_back", 0) for s in states)
            back_failed = sum(s.get("rebooted_failed", 0) for s in states)
            cpu_back = cpu_delta(procs.cpu(), cpu0)
            report.add(
                sec,
                "re-provisioning: rebooted phones back and provisioned / failed",
                f"{back_ok:,} / {back_failed:,} of {rebooted:,}, "
                f"{t_back - t0:,.1f} s after the POST",
            )
            report.add(
                sec,
                "  CPU agent / cloud / phones, POST -> all back",
                cpu_text(cpu_back, t_back - t0),
            )

            # let the agent's post-task monitoring and outbox settle, bounded
            def drained() -> dict[str, Any] | None:
                series.sample()
                state = read_json(status_file) or {}
                return (
                    state
                    if time.time() - t_back > 3
                    and agent_status(agent_dir).get("queued_reports", 1) == 0
                    else None
                )

            with contextlib.suppress(TimeoutError):
                wait_until("the agent's outbox drained", drained, 120, [procs.agent])
            final = agent_status(agent_dir)
            report.add(
                sec,
                "agent afterwards: jobs done / queued reports / monitored",
                f"{final.get('jobs_done', 0):,} / {final.get('queued_reports', '?')} / "
                f"{final.get('monitored_devices', 0):,}",
            )
            report.add(
                sec,
                "agent peak RSS whole reboot run (max sampled VmRSS)",
                mib(max(peak_rss[0] * 1024, hwm)),
            )
            facts["reboot"] = {
                "wall_s": wall,
                "results": dict(results),
                "reasons": dict(reasons.most_common(10)),
                "cpu_to_done": cpu_done,
                "cpu_to_back": cpu_back,
                "agent_hwm": hwm,
                "agent_hwm_before": hwm_before,
                "progress": progress,
                "back": {"ok": back_ok, "failed": back_failed, "seconds": t_back - t0},
                "phones": states,
                "agent_status": final,
                "log": agent_log_summary(root / "agent-run2.err"),
                "load_before": load0,
            }
            log = facts["reboot"]["log"]
            for reason, count in list(log["phone_failures"].items())[:4]:
                report.add(sec, f"  agent log: phone failure x{count:,}: {reason[:55]}", "")
        facts["phones_rss"] = [proc_status(p.pid) for p in procs.phones]
        facts["cloud_rss"] = proc_status(procs.cloud.pid) if procs.cloud else {}
        cloud_log = (root / "cloud.err").read_text(errors="replace")
        cloud_errors = cloud_log.count('"level": "error"')
        report.add(
            sec,
            "peak RSS cloud / phone processes (each)",
            f"{mib(facts['cloud_rss'].get('VmHWM', 0) * 1024)} / "
            + ", ".join(mib(s.get("VmHWM", 0) * 1024) for s in facts["phones_rss"]),
        )
        report.add(
            sec,
            "cloud log: ERROR lines / tracebacks",
            f"{cloud_errors:,} / {cloud_log.count('Traceback'):,}",
        )
    finally:
        facts["wall_s"] = time.time() - started
        procs.stop_all()
        if args.keep:
            print(f"  (kept {root})")
        else:
            shutil.rmtree(root, ignore_errors=True)


# -- part 3: the cloud with 1,000 agents ---------------------------------------------------


@dataclass(slots=True)
class FakeRelay:
    index: int
    relay_id: str = ""
    secret: str = ""
    cursor: int = 0
    jobs: list[tuple[int, str, str]] = dataclasses.field(default_factory=list)  # seq, task, mac
    report_seq: int = 0

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Relay {self.relay_id}:{self.secret}"}


@dataclass(slots=True)
class Timings:
    latency: dict[str, list[float]] = dataclasses.field(
        default_factory=lambda: collections.defaultdict(list)
    )
    errors: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)
    late: list[float] = dataclasses.field(default_factory=list)


async def timed(
    session: aiohttp.ClientSession, timings: Timings, kind: str, method: str, url: str, **kw: Any
) -> Any:
    started = time.perf_counter()
    try:
        async with session.request(method, url, **kw) as response:
            value = await response.json(content_type=None)
            status = response.status
    except (aiohttp.ClientError, TimeoutError) as exc:
        timings.errors[f"{kind}: {type(exc).__name__}"] += 1
        return None
    timings.latency[kind].append(time.perf_counter() - started)
    if status >= 300:
        timings.errors[f"{kind}: HTTP {status}"] += 1
        return None
    return value


async def cloud_part(
    api: str,
    token: str,
    ready: dict[str, Any],
    pid: int,
    scale: Scale,
    report: Report,
    facts: dict[str, Any],
) -> None:
    from relay.sync.messages import (
        DeviceStatus,
        Heartbeat,
        JobResult,
        Line,
        Registration,
        ReportBatch,
    )
    from relay.sync.messages import (
        Report as Rep,
    )

    sec = f"cloud, {scale.agents:,} agents"
    rng = random.Random(7)
    admin = {"Authorization": f"Bearer {token}"}
    connector = aiohttp.TCPConnector(limit=400)
    polls = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=60)
    async with (
        aiohttp.ClientSession(connector=connector, timeout=timeout) as session,
        aiohttp.ClientSession(
            connector=polls, timeout=aiohttp.ClientTimeout(total=120)
        ) as longpolls,
    ):
        setup = Timings()
        # devices with an address, so jobs for them are handed out
        macs = [f"0004f2{i:06x}" for i in range(scale.devices)]
        gate = asyncio.Semaphore(16)

        async def device(i: int, mac: str) -> None:
            async with gate:
                await timed(
                    session,
                    setup,
                    "POST /devices",
                    "POST",
                    f"{api}/devices",
                    json={
                        "mac": mac,
                        "model": "VVX450",
                        "public_ip": f"127.40.{i // 250}.{i % 250 + 1}",
                    },
                    headers=admin,
                )

        t = time.perf_counter()
        await asyncio.gather(*(device(i, m) for i, m in enumerate(macs)))
        report.add(
            sec,
            f"setup: {scale.devices:,} devices through POST /devices (16 at once)",
            f"{time.perf_counter() - t:,.1f} s",
        )

        relays = [FakeRelay(i) for i in range(scale.agents)]
        cpu0, t0 = cpu_seconds([pid]), time.perf_counter()

        async def register(relay: FakeRelay) -> None:
            async with gate:
                body = Registration(
                    ready["tenant"], ready["pin"], f"bench-{relay.index}", "bench", ("127.0.0.1",)
                ).to_wire()
                value = await timed(
                    session, setup, "register", "POST", f"{api}/agent/register", json=body
                )
                if value:
                    relay.relay_id, relay.secret = value["relay_id"], value["secret"]

        await asyncio.gather(*(register(r) for r in relays))
        wall = time.perf_counter() - t0
        relays = [r for r in relays if r.relay_id]
        report.add(
            sec,
            "register: relays / wall (16 at once) / cloud CPU",
            f"{len(relays):,} / {wall:,.1f} s / {cpu_seconds([pid]) - cpu0:,.1f} s",
        )
        report.add(sec, "register latency p50 / p95 / p99", ms3(setup.latency["register"]))

        async def beat(relay: FakeRelay, uptime: float, timings: Timings) -> None:
            body = Heartbeat("bench", ("127.0.0.1",), uptime, "absent").to_wire()
            url = f"{api}/agent/heartbeat"
            await timed(session, timings, "heartbeat", "POST", url, json=body, headers=relay.auth)

        await asyncio.gather(*(beat(r, 1.0, setup) for r in relays))
        stop_polls = asyncio.Event()
        received = [0]

        async def poll(relay: FakeRelay, timings: Timings) -> None:
            while not stop_polls.is_set():
                url = f"{api}/agent/jobs?after={relay.cursor}&wait=30"
                value = await timed(
                    longpolls, timings, "jobs long-poll", "GET", url, headers=relay.auth
                )
                if value is None:
                    await asyncio.sleep(1.0)
                    continue
                for job in value.get("jobs", []):
                    relay.jobs.append((job["seq"], job["task_id"], job["device"]["mac"]))
                    relay.cursor = max(relay.cursor, job["seq"])
                    received[0] += 1

        polling = Timings()
        pollers = [asyncio.create_task(poll(r, polling)) for r in relays]
        await asyncio.sleep(3.0)  # every relay now waits in its long-poll
        results_wanted = scale.reports_per_minute * scale.phase_seconds / 60 * 2  # both phases
        tasks_needed = max(
            1, math.ceil(results_wanted / scale.devices / 2)
        )  # half of reports are results
        cpu0, t0 = cpu_seconds([pid]), time.perf_counter()
        task_ids = []
        for k in range(tasks_needed):
            value = await timed(
                session,
                setup,
                "POST /tasks",
                "POST",
                f"{api}/tasks",
                json={
                    "type": "check_sync",
                    "name": f"bench {k}",
                    "targets": {"devices": macs},
                    "when": "now",
                },
                headers=admin,
            )
            if value:
                task_ids.append(value["id"])
        total_jobs = tasks_needed * scale.devices
        deadline = time.perf_counter() + 120
        while received[0] < total_jobs and time.perf_counter() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.1)
        spread = time.perf_counter() - t0
        report.add(
            sec,
            f"tasks: {tasks_needed} x {scale.devices:,} jobs, POST -> all fetched (long-polls)",
            f"{received[0]:,} / {total_jobs:,} in {spread:,.1f} s, "
            f"cloud CPU {cpu_seconds([pid]) - cpu0:,.1f} s",
        )
        report.add(
            sec,
            f"  POST /tasks latency p50 / p95 / p99 ({len(relays):,} long-polls waiting)",
            ms3(setup.latency["POST /tasks"]),
        )
        facts["setup_errors"] = dict(setup.errors)

        pending = collections.deque((r, job) for r in relays for job in r.jobs)
        rng.shuffle(pending)  # type: ignore[arg-type]
        phases = [("real rate", scale.heartbeat_real), ("fast", scale.heartbeat_fast)]
        facts["phases"] = {}
        for label, every in phases:
            timings = Timings()
            inflight: set[asyncio.Task[Any]] = set()
            schedule: list[tuple[float, str, FakeRelay]] = []
            w = scale.phase_seconds
            n_beats = int(w / every * len(relays))
            for k in range(n_beats):
                at = k * every / len(relays)
                schedule.append((at, "heartbeat", relays[k % len(relays)]))
            n_reports = int(scale.reports_per_minute * w / 60)
            for k in range(n_reports):
                schedule.append(
                    (
                        k * 60 / scale.reports_per_minute,
                        "report",
                        relays[rng.randrange(len(relays))],
                    )
                )
            schedule.sort(key=lambda s: s[0])
            sent = collections.Counter()

            async def send(
                kind: str,
                relay: FakeRelay,
                timings: Timings = timings,
                sent: collections.Counter[str] = sent,
            ) -> None:
                if kind == "heartbeat":
                    await beat(relay, 100.0, timings)
                    return
                if sent["result"] <= sent["status"] and pending:
                    owner, (seq, task_id, mac) = pending.popleft()
                    owner.report_seq += 1
                    rep = Rep(owner.report_seq, result=JobResult(seq, task_id, mac, "success"))
                    relay, what = owner, "report: result"
                else:
                    relay.report_seq += 1
                    status = DeviceStatus(
                        macs[rng.randrange(len(macs))],
                        True,
                        time.time(),
                        lines=(Line(1, "registered", "1001"),),
                        uptime=100.0,
                    )
                    rep = Rep(relay.report_seq, status=status)
                    what = "report: status"
                sent[what.split(": ")[1]] += 1
                body = ReportBatch((rep,)).to_wire()
                await timed(
                    session,
                    timings,
                    what,
                    "POST",
                    f"{api}/agent/reports",
                    json=body,
                    headers=relay.auth,
                )

            cpu0, load0 = cpu_seconds([pid]), load()
            t0 = time.perf_counter()
            for at, kind, relay in schedule:
                delay = t0 + at - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                else:
                    timings.late.append(-delay)
                task = asyncio.create_task(send(kind, relay))
                inflight.add(task)
                task.add_done_callback(inflight.discard)
            if inflight:
                await asyncio.wait(inflight, timeout=60)
            wall = time.perf_counter() - t0
            cpu = cpu_seconds([pid]) - cpu0
            name = f"{label}: heartbeats every {every:g} s"
            report.add(
                sec,
                f"{name}; {len(schedule):,} requests in {w:.0f} s",
                f"{n_beats / w:,.1f} beats/s + {n_reports / w:,.1f} reports/s",
            )
            for kind in ("heartbeat", "report: result", "report: status"):
                report.add(
                    sec,
                    f"  {kind} latency p50 / p95 / p99 (n={len(timings.latency[kind]):,})",
                    ms3(timings.latency[kind]),
                )
            report.add(
                sec,
                "  cloud CPU seconds per minute (cores)",
                f"{cpu / wall * 60:,.1f} s ({cpu / wall:.2f})",
            )
            report.add(
                sec,
                "  errors / driver late > 100 ms",
                f"{sum(timings.errors.values()):,} / {sum(1 for x in timings.late if x > 0.1):,}",
            )
            report.add(sec, "  load average before / after", f"{load0} / {load()}")
            facts["phases"][label] = {
                "heartbeat_every": every,
                "wall_s": wall,
                "cloud_cpu_s": cpu,
                "latency": {
                    k: {
                        "n": len(v),
                        "p50": pct(v, 50),
                        "p95": pct(v, 95),
                        "p99": pct(v, 99),
                        "max": max(v, default=0),
                    }
                    for k, v in timings.latency.items()
                },
                "errors": dict(timings.errors),
                "late_max": max(timings.late, default=0.0),
                "sent": dict(sent),
            }
        stop_polls.set()
        for task in pollers:
            task.cancel()
        await asyncio.gather(*pollers, return_exceptions=True)
        # were the results stored? sum of successes over the tasks
        stored = 0
        for task_id in task_ids:
            value = await timed(
                session, setup, "GET task", "GET", f"{api}/tasks/{task_id}", headers=admin
            )
            if value:
                stored += value["success"]
        sent_results = sum(p["sent"].get("result", 0) for p in facts["phases"].values())
        report.add(sec, "results stored by the cloud / sent", f"{stored:,} / {sent_results:,}")
        report.add(
            sec, "long-poll errors (relays' GET /agent/jobs)", f"{sum(polling.errors.values()):,}"
        )
        facts["polling_errors"] = dict(polling.errors)


def measure_cloud(scale: Scale, args: argparse.Namespace, report: Report) -> None:
    root = Path(tempfile.mkdtemp(prefix="bench-agent-cloud-"))
    proc = None
    facts: dict[str, Any] = {}
    report.facts["cloud"] = facts
    try:
        print(f"\n-- cloud with {scale.agents:,} agents (work dir {root})", flush=True)
        proc, ready = start_cloud(root, ["--log-level", "WARNING"])
        asyncio.run(cloud_part(ready["api"], ready["token"], ready, proc.pid, scale, report, facts))
        facts["cloud_rss"] = proc_status(proc.pid)
        report.add(
            f"cloud, {scale.agents:,} agents",
            "cloud peak RSS (VmHWM)",
            mib(facts["cloud_rss"].get("VmHWM", 0) * 1024),
        )
    finally:
        terminate(proc)
        if args.keep:
            print(f"  (kept {root})")
        else:
            shutil.rmtree(root, ignore_errors=True)


# -- main ------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> tuple[Scale, argparse.Namespace]:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument(
        "--phones", default="1000", help="fleet sizes, comma-separated (default 1000)"
    )
    parser.add_argument("--parts", default="reboot,monitor,cloud", help="of reboot, monitor, cloud")
    parser.add_argument("--reboot-seconds", type=float, default=1.0, help="phones' reboot time")
    parser.add_argument("--busy-after-boot", type=float, default=1.0)
    parser.add_argument("--rest-processing", type=float, default=0.02)
    parser.add_argument("--boot-concurrency", type=int, default=100, help="phones booting at once")
    parser.add_argument("--monitor-seconds", type=float, default=5.0, help="agent run 1's interval")
    parser.add_argument("--step-timeout", type=float, default=900.0, help="bound of each wait")
    parser.add_argument("--agents", type=int, default=1000)
    parser.add_argument("--devices", type=int, default=2000, help="cloud part's devices")
    parser.add_argument("--reports-per-minute", type=int, default=10_000)
    parser.add_argument("--heartbeat-fast", type=float, default=10.0)
    parser.add_argument("--heartbeat-real", type=float, default=120.0)
    parser.add_argument("--phase-seconds", type=float, default=60.0)
    parser.add_argument("--seed", type=int, default=4)
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    parser.add_argument("--keep", action="store_true", help="keep the work directories")
    parser.add_argument(
        "--fast-boot",
        action="store_true",
        help="create the devices with POST /devices and start the phones provisioned "
        "(no initial boot conversation; reboots still re-provision from the cloud)",
    )
    parser.add_argument(
        "--back-timeout", type=float, default=300.0, help="wait for re-provisioned phones"
    )
    parser.add_argument(
        "--py-spy", help="py-spy executable: profile the agent during the reboot task"
    )
    args = parser.parse_args(argv)
    args.profile_dir = None
    if args.py_spy:
        args.profile_dir = Path(tempfile.mkdtemp(prefix="bench-agent-pyspy-"))
    scale = Scale(
        phones=tuple(int(x) for x in args.phones.split(",") if x.strip()),
        parts=tuple(p.strip() for p in args.parts.split(",") if p.strip()),
        reboot_seconds=args.reboot_seconds,
        busy_after_boot=args.busy_after_boot,
        rest_processing=args.rest_processing,
        boot_concurrency=args.boot_concurrency,
        monitor_seconds=args.monitor_seconds,
        step_timeout=args.step_timeout,
        agents=args.agents,
        devices=args.devices,
        reports_per_minute=args.reports_per_minute,
        heartbeat_fast=args.heartbeat_fast,
        heartbeat_real=args.heartbeat_real,
        phase_seconds=args.phase_seconds,
    )
    unknown = set(scale.parts) - {"reboot", "monitor", "cloud"}
    if unknown:
        parser.error(f"unknown parts: {', '.join(sorted(unknown))}")
    return scale, args


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["phones"]:
        return phones_main(argv[1:])
    scale, args = parse_args(argv)
    when = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    print(f"bench_agent {' '.join(argv)}\n{when}; {machine()}\n{scale}", flush=True)
    nofile = raise_nofile()
    report = Report()
    report.facts["nofile"] = nofile
    report.facts["load_start"] = load()
    started = time.perf_counter()
    for n in scale.phones:
        if {"reboot", "monitor"} & set(scale.parts):
            try:
                measure_fleet(n, scale, args, report)
            except (RuntimeError, TimeoutError, OSError) as exc:
                report.add(f"{n:,} phones", "STOPPED", str(exc)[:200])
                report.facts[f"fleet_{n}_error"] = str(exc)
    if "cloud" in scale.parts:
        measure_cloud(scale, args, report)
    report.facts["total_s"] = time.perf_counter() - started
    if args.profile_dir:
        print_profiles(args.profile_dir, report, "the agent during the reboot task", 15)
    finish(report, when, scale, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
