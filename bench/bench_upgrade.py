"""500 phones upgrading at once from the relay (issue 6, "Measure").

`relay up --json --free-ports` runs in its own process: the embedded cloud, the
relay's listeners and the embedded download agent, as an admin installs it. Then,
through the REST API as the admin (tests/e2e/test_images_on_relay.py does the same
in-process):

1. a SIMFW1 image (relay.sim.firmware.make_image, VVX family, `--image-mb` MB of
   payload, a version no simulated phone runs) is registered BY URL
   (`POST /api/v1/images`), its only source a throw-away `python -m http.server` on
   127.0.0.1; `PUT /api/v1/relay-images [id]`; `GET /api/v1/relays/{id}/images` is
   polled until the relay says `synced`;
2. the static server is stopped: from then on the bytes exist only on the relay's
   disk (`<data-dir>/images/blobs/<sha256>`, checked). The cloud never had them, so
   a phone request the relay passed on to the cloud would fail;
3. a site (public subnet 127.0.0.0/8: behind the relay every phone comes from the
   relay's 127.0.0.1) whose download path is the relay's HTTPS URL, and the global
   profiles plus `Software-VVX-<version>`: APP_FILE_PATH sends phones to
   `<relay_https>images/<id>/<part>.sip.ld`;
4. `--phones` (500) simulated VVX phones (relay.sim Fleet, this script's `phones`
   sub-command in its own process, concurrency = phones: all power on at once)
   provision through the relay's HTTPS URL, see the new version, download the image
   from the relay, verify it (size, sha256), reboot and provision again.

Reported: the time from power-on until the cloud's device list (`GET /devices`,
polled every second) shows the new firmware for all phones; the phones' own boot
times; failures and errors (goal 0, each kind listed); where each firmware download
came from (every 200 for the image must be from relay_https); CPU of relay up,
the phones and others on the machine; peak RSS of both. Nothing is hidden: a phone
that fails counts as a failure and its error is printed.

    .venv/bin/python bench/bench_upgrade.py                 # 500 phones, 20 MB (~2-4 min)
    .venv/bin/python bench/bench_upgrade.py --quick         # 50 phones, 5 MB (~30 s)
    .venv/bin/python bench/bench_upgrade.py --phones 200 --image-mb 50 --json /tmp/up.json

Loopback only (phones on 127.x source addresses). relay up, the static server and
the phones process are stopped at the end, errors included; the phones process is
bounded by `--timeout` (then killed).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import hashlib
import json
import os
import re
import resource
import select
import signal
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench_provisioning import (
    busy_cpu_seconds,
    cpu_seconds,
    free_port,
    kill_if_running,
    proc_status,
    raise_nofile,
    relay_cli,
    relay_process,
    stop,
)
from report import Report, begin, finish, mib

from relay.sim.firmware import make_image
from relay.sim.fleet import Fleet, make_specs

HOST = "127.0.0.1"
FAMILY = "VVX"
FILENAME = "sip.ld"
VERSION = "7.0.1.2000"  # not in relay.sim.fleet.FIRMWARE_VERSIONS: every phone upgrades
MODELS = {"VVX250": "", "VVX350": "", "VVX450": "", "VVX500": "", "VVX600": ""}
SITE_SUBNET = "127.0.0.0/8"
SYNC_TIMEOUT = 300.0
GRACE = 60.0
POLL_SECONDS = 1.0
ERROR_KINDS = 8


@dataclass(frozen=True, slots=True)
class Scale:
    phones: int
    image_mb: int
    timeout: float
    request_timeout: float


FULL = Scale(500, 20, 900.0, 30.0)
QUICK = Scale(50, 5, 300.0, 30.0)


# -- the admin's side ----------------------------------------------------------------------


class Api:
    """The control plane's REST API as the admin (bearer token), with urllib."""

    def __init__(self, base: str, token: str, cafile: str | None) -> None:
        self.base = base.rstrip("/")
        self.token = token
        self.tls = ssl.create_default_context(cafile=cafile)

    def call(self, method: str, path: str, body: Any = None, expect: int = 200) -> Any:
        headers = {"Authorization": f"Bearer {self.token}", "Accept": "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        request = urllib.request.Request(self.base + path, data, headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=60, context=self.tls) as reply:
                status, raw = reply.status, reply.read()
        except urllib.error.HTTPError as exc:
            with exc:
                status, raw = exc.code, exc.read()
        if status != expect:
            raise RuntimeError(f"{method} {path}: HTTP {status} {raw[:500]!r}")
        return json.loads(raw) if raw else None


@contextlib.contextmanager
def relay_up(work: Path) -> Iterator[tuple[subprocess.Popen[bytes], dict[str, Any]]]:
    """`relay up --json --free-ports` until its ready line; SIGTERM after."""
    argv = [*relay_cli(), "up", "--json", "--free-ports", "--data-dir", str(work / "data")]
    with relay_process(argv, work, "relay up") as running:
        yield running


@contextlib.contextmanager
def static_server(directory: Path, work: Path) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """`python -m http.server` over DIRECTORY on 127.0.0.1 (the image's only source)."""
    port = free_port()
    argv = [sys.executable, "-m", "http.server", "--bind", HOST, "--directory", str(directory)]
    with (work / "static.err").open("wb") as err:
        proc = subprocess.Popen([*argv, str(port)], stdout=subprocess.DEVNULL, stderr=err)
    try:
        deadline = time.monotonic() + 30
        while True:
            with (
                contextlib.suppress(OSError),
                urllib.request.urlopen(f"http://{HOST}:{port}/", timeout=2),
            ):
                break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the static server did not start")
            time.sleep(0.1)
        yield proc, port
    finally:
        stop(proc, "static server")


def wait_synced(api: Api, relay_id: str, image_id: str) -> tuple[float, dict[str, Any]]:
    """Seconds until the relay reports the image `synced`, and that state."""
    started = time.perf_counter()
    deadline = started + SYNC_TIMEOUT
    while time.perf_counter() < deadline:
        states = api.call("GET", f"/relays/{relay_id}/images")
        mine = [s for s in states if s["image"] == image_id]
        if mine and mine[0]["status"] == "synced":
            return time.perf_counter() - started, mine[0]
        if mine and mine[0]["status"] == "failed":
            raise RuntimeError(f"the relay failed to sync the image: {mine[0]}")
        time.sleep(0.2)
    raise RuntimeError(f"the image was not synced within {SYNC_TIMEOUT:.0f} s")


def upgraded(api: Api, macs: set[str]) -> int:
    """How many of MACS the cloud's device list shows with the new firmware."""
    listed = api.call("GET", "/devices?limit=1000")
    return sum(1 for d in listed["devices"] if d["id"] in macs and d.get("firmware") == VERSION)


# -- the phones (a sub-command, in its own process) ----------------------------------------


def phone_specs(args: argparse.Namespace) -> list[Any]:
    specs = make_specs(
        args.phones,
        [args.server],
        user=args.user,
        password=os.environ.get("UPGRADE_PASSWORD", ""),
        cacert=args.cacert,
        seed=args.seed,
        models=MODELS,
    )
    return [dataclasses.replace(s, request_timeout=args.request_timeout) for s in specs]


async def boot_phones(args: argparse.Namespace) -> dict[str, Any]:
    fleet = Fleet(phone_specs(args), concurrency=args.phones, seed=args.seed)
    async with fleet:
        started = time.perf_counter()
        summary = await fleet.boot_all(timeout=args.timeout)
        wall = time.perf_counter() - started
        reports = [p.report() for p in fleet.phones]
    sources: Counter[str] = Counter()
    for report in reports:
        for request in report.requests:
            if request[1].endswith(FILENAME) and request[2] == 200:
                where = "relay" if request[1].startswith(args.server) else request[1][:60]
                sources[where] += 1
    times = sorted(r.boot_seconds for r in reports if r.boot_seconds is not None)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "summary": {k: v for k, v in summary.items() if k != "errors"},
        "errors": summary["errors"],
        "firmware": dict(Counter(r.firmware for r in reports)),
        "image_downloads": dict(sources),
        "boot_seconds": times,
        "fleet_wall": wall,
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "maxrss_kib": usage.ru_maxrss,
    }


def phones_main(args: argparse.Namespace) -> int:
    raise_nofile()
    print(json.dumps(asyncio.run(boot_phones(args))), flush=True)
    return 0


# -- the run -------------------------------------------------------------------------------


def nearest_rank(sorted_values: Sequence[float], percent: float) -> float:
    index = max(0, -(-len(sorted_values) * percent // 100) - 1)
    return sorted_values[int(index)]


def setup(work: Path, api: Api, facts: dict[str, Any], scale: Scale, report: Report) -> str:
    """The image in the relay set, synced, its source gone; the site and the binding."""
    static = work / "static"
    (static / "fw").mkdir(parents=True)
    image = make_image(FAMILY, VERSION, scale.image_mb * 1_000_000)
    (static / "fw" / FILENAME).write_bytes(image)
    sha256 = hashlib.sha256(image).hexdigest()
    with static_server(static, work) as (_source, port):
        facts_in = {
            "model": FAMILY,
            "version": VERSION,
            "filename": FILENAME,
            "size": len(image),
            "sha256": sha256,
            "url": f"http://{HOST}:{port}/fw/{FILENAME}",
        }
        image_id = str(api.call("POST", "/images", facts_in, expect=201)["id"])
        api.call("PUT", "/relay-images", [image_id])
        seconds, state = wait_synced(api, facts["relay_id"], image_id)
    section = "setup"
    report.add(section, f"image: SIMFW1 {FAMILY} {VERSION}", f"{len(image):,} bytes")
    report.add(section, "relay set -> synced (registered by URL)", f"{seconds:.1f} s")
    blob = work / "data" / "images" / "blobs" / sha256
    on_disk = blob.is_file() and blob.stat().st_size == len(image)
    report.add(section, "blob on the relay's disk, right size", str(on_disk), "True", on_disk)
    report.add(section, "static server (the only other source)", "stopped before the phones")
    report.facts["sync"] = {"seconds": seconds, "state": state, "image": image_id}
    site = {
        "name": "Branch",
        "public_subnets": [{"cidr": SITE_SUBNET}],
        "download_path": facts["relay_https"],
    }
    api.call("POST", "/sites", site, expect=201)
    current = api.call("GET", "/deployment/global/-")
    profiles = list(current.get("profiles", [])) if isinstance(current, dict) else []
    api.call("PUT", "/deployment/global/-", {"profiles": [*profiles, f"Software-VVX-{VERSION}"]})
    return image_id


def phones_command(facts: dict[str, Any], scale: Scale, seed: int) -> list[str]:
    return [
        sys.executable, str(Path(__file__).resolve()), "phones",
        "--phones", str(scale.phones), "--seed", str(seed), "--server", facts["relay_https"],
        "--user", facts["prov_user"], "--cacert", facts["ca_cert"],
        "--timeout", str(scale.timeout), "--request-timeout", str(scale.request_timeout),
    ]  # fmt: skip


def storm(
    report: Report,
    api: Api,
    relay: subprocess.Popen[bytes],
    facts: dict[str, Any],
    scale: Scale,
    seed: int,
) -> None:
    """All phones at once; poll the device list until every phone shows the new firmware."""
    n = scale.phones
    macs = {s.mac for s in make_specs(n, [facts["relay_https"]], seed=seed, models=MODELS)}
    relay_cpu, busy = cpu_seconds([relay.pid]), busy_cpu_seconds()
    env = {**os.environ, "UPGRADE_PASSWORD": facts["prov_password"] or ""}
    print(f"\n-- {n:,} phones power on at once", flush=True)
    started = time.perf_counter()
    proc = subprocess.Popen(
        phones_command(facts, scale, seed),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        env=env,
    )
    all_at: float | None = None
    progress: list[tuple[float, int]] = []
    try:
        assert proc.stdout is not None and proc.stderr is not None
        out_parts: list[bytes] = []
        while True:
            readable = select.select([proc.stdout], [], [], POLL_SECONDS)[0]
            if readable:
                chunk = os.read(proc.stdout.fileno(), 1 << 20)
                if not chunk:
                    break
                out_parts.append(chunk)
            if all_at is None:
                count = upgraded(api, macs)
                now = time.perf_counter() - started
                if not progress or progress[-1][1] != count:
                    progress.append((now, count))
                    print(f"  {now:6.1f} s: {count:,} of {n:,} show {VERSION}", flush=True)
                if count == n:
                    all_at = now
            if time.perf_counter() - started > scale.timeout + GRACE:
                raise RuntimeError("the phones process did not finish in time")
        proc.wait(timeout=30)
        err = proc.stderr.read()
    finally:
        kill_if_running(proc)
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()
    wall = time.perf_counter() - started
    relay_cpu = cpu_seconds([relay.pid]) - relay_cpu
    busy = busy_cpu_seconds() - busy
    final = upgraded(api, macs)
    if all_at is None and final == n:
        all_at = wall
    lines = [x for x in b"".join(out_parts).decode(errors="replace").splitlines() if x[:1] == "{"]
    if not lines:
        tail = err.decode(errors="replace")[-2000:]
        raise RuntimeError(f"the phones printed no result (exit {proc.returncode}):\n{tail}")
    result: dict[str, Any] = json.loads(lines[-1])
    section = f"{n:,} at once"
    report.add(
        section,
        f"cloud's device list shows {VERSION}",
        f"{final:,} of {n:,}",
        f"all {n:,}",
        final == n,
    )
    report.add(
        section,
        "time from power-on until all show it",
        f"{all_at:,.1f} s" if all_at is not None else "not all",
    )
    summary = result["summary"]
    failed = n - result["firmware"].get(VERSION, 0)
    report.add(section, "phones that did not upgrade", f"{failed:,}", "0", failed == 0)
    report.add(section, "phone errors", f"{len(result['errors']):,}", "0", not result["errors"])
    report.add(section, "provisioned / failed (fleet)", f"{summary['provisioned']:,} / "
               f"{summary['failed']:,}")  # fmt: skip
    downloads = result["image_downloads"]
    from_relay = downloads.get("relay", 0)
    others = sum(v for k, v in downloads.items() if k != "relay")
    report.add(
        section,
        "image downloads (HTTP 200) from the relay / elsewhere",
        f"{from_relay:,} / {others:,}",
        f"{n:,} / 0",
        from_relay == n and others == 0,
    )
    moved = from_relay * scale.image_mb
    report.add(section, "image MB sent by the relay / per s of the whole storm", f"{moved:,} / "
               f"{moved / (all_at or wall):,.0f}")  # fmt: skip
    times = result["boot_seconds"]
    if times:
        report.add(
            section,
            "phone boot (incl. upgrade, reboot) p50 / p95 / max",
            f"{nearest_rank(times, 50):.1f} / {nearest_rank(times, 95):.1f} / {times[-1]:.1f} s",
        )
    report.add(section, "requests by the phones", f"{summary.get('requests', 0):,}")
    others_cpu = max(0.0, busy - relay_cpu - result["cpu_s"])
    report.add(
        section,
        "CPU relay up / phones / others on the machine (cores)",
        f"{relay_cpu / wall:.2f} / {result['cpu_s'] / wall:.2f} / {others_cpu / wall:.2f}",
    )
    report.add(
        section, "peak RSS relay up (VmHWM)", mib(proc_status(relay.pid).get("VmHWM", 0) * 1024)
    )
    report.add(section, "peak RSS phones process (ru_maxrss)", mib(result["maxrss_kib"] * 1024))
    kinds = Counter(re.sub(r"[0-9a-f]{12}", "<mac>", e)[:110] for e in result["errors"])
    for kind, count in kinds.most_common(ERROR_KINDS):
        report.add(section, f"error x{count:,}: {kind}", "")
    report.facts["storm"] = {
        "all_upgraded_s": all_at,
        "progress": progress,
        "wall_s": wall,
        "relay_cpu_s": relay_cpu,
        "others_cpu_s": others_cpu,
        **{k: v for k, v in result.items() if k not in ("boot_seconds", "errors")},
        "errors": result["errors"][:100],
    }


def log_problems(report: Report, work: Path) -> None:
    """ERROR lines and tracebacks in relay up's log (it is stopped by now)."""
    text = (work / "relay-up.err").read_text(errors="replace")
    errors = [line for line in text.splitlines() if "ERROR" in line]
    report.add("relay up log", "ERROR lines / tracebacks", f"{len(errors)} / "
               f"{text.count('Traceback')}")  # fmt: skip
    kinds = Counter(re.sub(r"\d+", "N", line)[:110] for line in errors)
    for kind, count in kinds.most_common(ERROR_KINDS):
        report.add("relay up log", f"x{count}: {kind}", "")


def run(scale: Scale, args: argparse.Namespace) -> Report:
    report = Report()
    started = time.perf_counter()
    report.facts["nofile"] = raise_nofile()
    with tempfile.TemporaryDirectory(prefix="bench-upgrade-") as tmp:
        work = Path(tmp)
        with relay_up(work) as (relay, facts):
            api = Api(facts["api"], facts["token"], facts["ca_cert"])
            print(f"relay up ready: relay_https {facts['relay_https']}", flush=True)
            setup(work, api, facts, scale, report)
            storm(report, api, relay, facts, scale, args.seed)
        log_problems(report, work)
    report.facts["total_s"] = time.perf_counter() - started
    report.facts["load_avg"] = os.getloadavg()
    return report


def parse_args(argv: Sequence[str] | None) -> tuple[Scale, argparse.Namespace]:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    sub = parser.add_subparsers(dest="command")
    phones = sub.add_parser("phones", help=argparse.SUPPRESS)
    phones.add_argument("--phones", type=int, required=True)
    phones.add_argument("--seed", type=int, required=True)
    phones.add_argument("--server", required=True)
    phones.add_argument("--user", required=True)
    phones.add_argument("--cacert", required=True)
    phones.add_argument("--timeout", type=float, required=True)
    phones.add_argument("--request-timeout", type=float, required=True)
    parser.add_argument("--quick", action="store_true", help="50 phones, 5 MB")
    parser.add_argument("--phones", type=int)
    parser.add_argument("--image-mb", type=int, help="image payload in MB (default 20)")
    parser.add_argument("--timeout", type=float, help="seconds the phones get (default 900)")
    parser.add_argument(
        "--request-timeout",
        type=float,
        help="a simulated phone's limit per request (default 30, the simulator's own)",
    )
    parser.add_argument("--seed", type=int, default=21)
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    if args.command == "phones":
        return FULL, args
    base = QUICK if args.quick else FULL
    scale = Scale(
        args.phones or base.phones,
        args.image_mb or base.image_mb,
        args.timeout or base.timeout,
        args.request_timeout or base.request_timeout,
    )
    return scale, args


def main(argv: Sequence[str] | None = None) -> int:
    scale, args = parse_args(argv)
    if args.command == "phones":
        return phones_main(args)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    when = begin("bench_upgrade", scale)
    report = run(scale, args)
    finish(report, when, scale, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
