"""Boot storm through the relay (issue 5, "Measure"): phones power on at once in a namespace.

`relay up` runs in the root network namespace, all its listeners on the
root-side end of a veth pair (198.51.100.1, TEST-NET-2); the phones (the
project's simulator, relay.sim) run inside a throw-away namespace at the
other end, all booting at once (concurrency = phones), and provision through
the relay's HTTPS listener, which relays every request to the embedded cloud.
Reported per leg: phones, provisioned, failed, errors (goal 0), time until all
were provisioned, boot time p50/p95/max, relay up's CPU and peak RSS (relay
and cloud are one process), the simulator's CPU and peak RSS.

Address plan. The documentation ranges leave about 250 host addresses per /24,
so 2,000 phones cannot each lease their own address from one pool. Hence three legs:

- `dhcp`: as many phones as the pool holds (198.51.100.10-254: 245) power on
  with nothing configured, lease from relay up's DHCP server (boot URL in
  160/161) and provision through the relay: the whole chain, DHCP included;
- `relay`: `--phones` (2,000) phones with static addresses (flash holds the
  relay's URL): 198.51.100.2-250 are put on the namespace's interface and
  shared, about 8 phones per address (each phone still opens one connection
  per request, as phones do; the cloud records the address as private_ip);
- `direct`: the same storm with other MACs, straight to the cloud's own
  provisioning service (`provisioning` in the ready line), without the relay:
  the comparison, on the same machine in the same run.

Each leg draws new MACs (its own seed), so every phone is a device the cloud
has never seen (auto-added, as at a first power-on). The simulator is this
script's `phones` sub-command run inside the namespace (`ip netns exec`): it
builds the fleet with relay.sim (Fleet, make_specs) and, for static
addresses, sets each phone's source address itself, because `relay sim`
takes only 127.x source addresses; the simulator is not changed.

    .venv/bin/python bench/bench_bootstorm.py                  # 2,000 phones, 245 by DHCP
    .venv/bin/python bench/bench_bootstorm.py --phones 200 --legs relay,direct
    .venv/bin/python bench/bench_bootstorm.py --json /tmp/storm.json

Needs root (network namespaces, veth, DHCP on port 67) and iproute2. relay up
is pinned to the first CPU and the phones to the others (as bench_provisioning's
simulator run; `--no-pin` leaves placement to the kernel). Every leg is bounded
(`--timeout`, then the phones process is killed); the namespace, the veth pair
and every process started are removed at the end, errors included. No traffic
leaves the veth pair.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import datetime as dt
import json
import os
import re
import resource
import secrets
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

from bench_provisioning import (
    CPUS,
    busy_cpu_seconds,
    cpu_seconds,
    kill_if_running,
    plan_cpus,
    proc_status,
    raise_nofile,
    relay_cli,
    relay_process,
    reset_peak_rss,
)
from report import Report, finish, mib

from relay.sim.dhcpclient import Timing
from relay.sim.dhcpnet import DhcpNet
from relay.sim.fleet import Fleet, make_specs

HOST = "198.51.100.1"
PREFIX = 24
POOL_FIRST, POOL_LAST = IPv4Address("198.51.100.10"), IPv4Address("198.51.100.254")
STATIC_FIRST, STATIC_LAST = IPv4Address("198.51.100.2"), IPv4Address("198.51.100.250")
LEGS = ("relay", "direct", "dhcp")
SEEDS = {"relay": 11, "direct": 12, "dhcp": 13}
# The phones process gets this long beyond its own --timeout before it is killed.
GRACE = 60.0
ERROR_KINDS = 5


@dataclass(frozen=True, slots=True)
class Link:
    """The namespace and the veth pair; `host_if` is the root-side end."""

    name: str
    host_if: str
    ns_if: str

    def command(self, *argv: str) -> list[str]:
        return ["ip", "netns", "exec", self.name, *argv]


def _ip(*argv: str) -> None:
    subprocess.run(["ip", *argv], check=True, capture_output=True, timeout=30)


@contextlib.contextmanager
def veth_namespace() -> Iterator[Link]:
    """`bootstorm-<random>` and a veth pair, the root end at HOST/24; all removed after."""
    tag = secrets.token_hex(4)
    link = Link(name=f"bootstorm-{tag}", host_if=f"bsh{tag}", ns_if=f"bsn{tag}")
    _ip("netns", "add", link.name)
    try:
        _ip("link", "add", link.host_if, "type", "veth", "peer", "name", link.ns_if,
            "netns", link.name)  # fmt: skip
        try:
            _ip("addr", "add", f"{HOST}/{PREFIX}", "dev", link.host_if)
            _ip("link", "set", link.host_if, "up")
            _ip("-n", link.name, "link", "set", "lo", "up")
            _ip("-n", link.name, "link", "set", link.ns_if, "up")
            yield link
        finally:
            subprocess.run(["ip", "link", "del", link.host_if], capture_output=True, check=False)
    finally:
        subprocess.run(["ip", "netns", "del", link.name], capture_output=True, check=False)


def static_addresses() -> list[str]:
    return [str(IPv4Address(n)) for n in range(int(STATIC_FIRST), int(STATIC_LAST) + 1)]


def add_static_addresses(link: Link) -> None:
    """Put the shared phone addresses on the namespace's end (one `ip -batch`)."""
    lines = "".join(f"addr add {a}/{PREFIX} dev {link.ns_if}\n" for a in static_addresses())
    subprocess.run(
        ["ip", "-n", link.name, "-batch", "-"],
        input=lines.encode(),
        check=True,
        capture_output=True,
        timeout=60,
    )


def flush_addresses(link: Link) -> None:
    """Take every IPv4 address off the namespace's end: the DHCP phones start from none."""
    _ip("-n", link.name, "-4", "addr", "flush", "dev", link.ns_if)


@contextlib.contextmanager
def relay_up(
    workdir: Path, link: Link, relay: Sequence[str]
) -> Iterator[tuple[subprocess.Popen[bytes], dict[str, Any]]]:
    """`relay up` with everything on HOST and DHCP (lease mode) on the link; SIGTERM after.

    `relay` is the command that runs the relay CLI (the venv's `relay`, or a what-if
    wrapper such as bench/whatif_relay.py)."""
    argv = [
        *relay, "up", "--json", "--free-ports", "--data-dir", str(workdir / "data"),
        "--host", HOST, "--bind", HOST, "--log-format", "json",
        "--dhcp-interface", link.host_if, "--dhcp-mode", "lease",
        "--dhcp-pool", f"{POOL_FIRST}-{POOL_LAST}",
    ]  # fmt: skip
    with relay_process(CPUS.run_on("server", argv), workdir, "relay up") as running:
        yield running


@dataclass(frozen=True, slots=True)
class Leg:
    """One storm: who boots, from where, with what."""

    name: str
    phones: int
    server: str | None
    seed: int


def phones_command(
    link: Link, leg: Leg, facts: dict[str, Any], args: argparse.Namespace
) -> list[str]:
    """This script's `phones` sub-command inside the namespace, on the load CPUs."""
    argv = [
        sys.executable, str(Path(__file__).resolve()), "phones",
        "--phones", str(leg.phones), "--seed", str(leg.seed), "--cacert", facts["ca_cert"],
        "--timeout", str(args.timeout), "--dhcp-retry", str(args.dhcp_retry),
    ]  # fmt: skip
    if leg.server is None:
        argv += ["--dhcp", link.ns_if]
    else:
        argv += ["--server", leg.server, "--user", facts["prov_user"]]
    return CPUS.run_on("client", link.command(*argv))


def run_leg(
    report: Report,
    link: Link,
    leg: Leg,
    relay: subprocess.Popen[bytes],
    facts: dict[str, Any],
    args: argparse.Namespace,
) -> dict[str, Any]:
    """Boot the leg's phones at once; add its rows; its figures for --json."""
    print(f"\n-- {leg.name}: {leg.phones:,} phones at once", flush=True)
    peak_reset = reset_peak_rss(relay.pid)
    relay_cpu, busy = cpu_seconds([relay.pid]), busy_cpu_seconds()
    env = {**os.environ, "BOOTSTORM_PASSWORD": facts["prov_password"] or ""}
    started = time.perf_counter()
    proc = subprocess.Popen(
        phones_command(link, leg, facts, args),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        env=env,
    )
    try:
        out, err = proc.communicate(timeout=args.timeout + GRACE)
    finally:
        kill_if_running(proc)
    wall = time.perf_counter() - started
    relay_cpu = cpu_seconds([relay.pid]) - relay_cpu
    busy = busy_cpu_seconds() - busy
    relay_mem = proc_status(relay.pid)
    lines = [line for line in out.decode(errors="replace").splitlines() if line.startswith("{")]
    if not lines:
        tail = err.decode(errors="replace")[-2000:]
        raise RuntimeError(f"the phones printed no result (exit {proc.returncode}):\n{tail}")
    result: dict[str, Any] = json.loads(lines[-1])
    summary = result["summary"]
    times = sorted(result["boot_seconds"])
    n = leg.phones
    section = leg.name
    report.add(
        section,
        "provisioned / failed of all",
        f"{summary['provisioned']:,} / {summary['failed']:,} of {n:,}",
        f"all of {n:,}",
        summary["provisioned"] == n,
    )
    report.add(section, "errors", f"{len(result['errors']):,}", "0", not result["errors"])
    report.add(
        section,
        "time until all provisioned (from power-on)",
        f"{result['boot_wall']:,.1f} s" if summary["provisioned"] == n else "not all",
    )
    if times:
        report.add(
            section,
            "boot time per phone p50 / p95 / max",
            f"{nearest_rank(times, 50):.1f} / {nearest_rank(times, 95):.1f} / {times[-1]:.1f} s",
        )
    if summary.get("boot_sources"):
        found = ", ".join(f"{k} {v:,}" for k, v in summary["boot_sources"].items())
        report.add(section, "servers found by", found)
    report.add(
        section,
        "requests (new connection each) / per second",
        f"{summary['requests']:,} / {summary['requests'] / result['boot_wall']:,.0f}",
    )
    others = max(0.0, busy - relay_cpu - result["cpu_s"])
    report.add(
        section,
        "CPU relay up / phones / others on the machine (cores)",
        f"{relay_cpu / wall:.2f} / {result['cpu_s'] / wall:.2f} / {others / wall:.2f}",
    )
    report.add(
        section,
        "peak RSS relay up (relay + cloud; VmHWM" + (", reset before)" if peak_reset else ")"),
        mib(relay_mem.get("VmHWM", 0) * 1024),
    )
    report.add(section, "peak RSS phones process (ru_maxrss)", mib(result["maxrss_kib"] * 1024))
    kinds = Counter(re.sub(r"[0-9a-f]{12}", "<mac>", e)[:100] for e in result["errors"])
    for kind, count in kinds.most_common(ERROR_KINDS):
        report.add(section, f"error x{count:,}: {kind}", "")
    return {
        "leg": dataclasses.asdict(leg),
        "wall_s": wall,
        "relay_cpu_s": relay_cpu,
        "others_cpu_s": others,
        "relay_status": relay_mem,
        **{k: v for k, v in result.items() if k != "boot_seconds"},
        "boot_p50_s": nearest_rank(times, 50) if times else None,
        "boot_p95_s": nearest_rank(times, 95) if times else None,
        "errors": result["errors"][:50],
    }


def nearest_rank(sorted_values: Sequence[float], percent: float) -> float:
    index = max(0, -(-len(sorted_values) * percent // 100) - 1)
    return sorted_values[int(index)]


def run(args: argparse.Namespace) -> Report:
    report = Report()
    nofile = raise_nofile()
    report.facts["nofile"] = nofile
    report.facts["relay_up_cmd"] = args.relay_up_cmd or relay_cli()
    with (
        tempfile.TemporaryDirectory(prefix="bench-bootstorm-") as tmp,
        veth_namespace() as link,
        relay_up(Path(tmp), link, args.relay_up_cmd or relay_cli()) as (relay, facts),
    ):
        print(f"relay up ready: relay {facts['relay_https']}, cloud {facts['provisioning']}")
        servers = {"relay": facts["relay_https"], "direct": facts["provisioning"], "dhcp": None}
        sizes = {"relay": args.phones, "direct": args.phones, "dhcp": args.dhcp_phones}
        static = [name for name in args.legs if servers[name] is not None]
        if static:
            add_static_addresses(link)
        for name in args.legs:
            if name == "dhcp" and static:
                flush_addresses(link)
                static = []
            leg = Leg(name, sizes[name], servers[name], SEEDS[name])
            report.facts[name] = run_leg(report, link, leg, relay, facts, args)
        logged = (Path(tmp) / "relay-up.err").read_text(errors="replace")
        if args.keep_log is not None:
            args.keep_log.write_text(logged)
    errors = sum(1 for line in logged.splitlines() if '"level": "error"' in line)
    report.add(
        "relay up log", "ERROR lines / tracebacks", f"{errors:,} / {logged.count('Traceback'):,}"
    )
    if "relay" in report.facts and "direct" in report.facts:
        ratio_rows(report)
    return report


def ratio_rows(report: Report) -> None:
    """Through the relay against straight to the cloud, same phones count, same run."""
    via, direct = report.facts["relay"], report.facts["direct"]
    if via["summary"]["failed"] or direct["summary"]["failed"]:
        return
    report.add(
        "compared",
        "time until all provisioned, relay / direct",
        f"x{via['boot_wall'] / direct['boot_wall']:.2f}",
    )
    report.add(
        "compared",
        "relay up CPU seconds, relay / direct",
        f"x{via['relay_cpu_s'] / max(direct['relay_cpu_s'], 1e-9):.2f}",
    )


# -- the phones, inside the namespace ----------------------------------------------------------


async def boot_phones(args: argparse.Namespace) -> dict[str, Any]:
    """Build the fleet (DHCP, or static addresses shared round-robin) and boot it at once."""
    if args.dhcp:
        net = DhcpNet(args.dhcp, timing=Timing(retry_base=args.dhcp_retry))
        fleet = Fleet.build(
            args.phones, (), cacert=args.cacert, seed=args.seed, concurrency=args.phones, dhcp=net
        )
    else:
        addresses = static_addresses()
        password = os.environ.get("BOOTSTORM_PASSWORD", "")
        specs = [
            dataclasses.replace(
                spec,
                source_ip=addresses[index % len(addresses)],
                servers=(args.server,),
                user=args.user,
                password=password,
                cacert=args.cacert,
            )
            for index, spec in enumerate(make_specs(args.phones, (), seed=args.seed, dhcp=True))
        ]
        fleet = Fleet(specs, concurrency=args.phones, seed=args.seed)
    async with fleet:
        started = time.perf_counter()
        summary = await fleet.boot_all(timeout=args.timeout)
        wall = time.perf_counter() - started
        times = [
            r.boot_seconds for r in (p.report() for p in fleet.phones) if r.boot_seconds is not None
        ]
        # All phones start at once: the last one provisioned is when the storm ended.
        return {
            "summary": {k: v for k, v in summary.items() if k != "errors"},
            "errors": summary["errors"],
            "boot_seconds": times,
            "boot_wall": max(times) if times else wall,
            "fleet_wall": wall,
        }


def phones_main(args: argparse.Namespace) -> int:
    result = asyncio.run(boot_phones(args))
    usage = resource.getrusage(resource.RUSAGE_SELF)
    result["cpu_s"] = usage.ru_utime + usage.ru_stime
    result["maxrss_kib"] = usage.ru_maxrss
    print(json.dumps(result), flush=True)
    return 0


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0], allow_abbrev=False)
    sub = parser.add_subparsers(dest="command")
    phones = sub.add_parser("phones", help="(internal) boot the phones, inside the namespace")
    phones.add_argument("--phones", type=int, required=True)
    phones.add_argument("--seed", type=int, required=True)
    phones.add_argument("--cacert", required=True)
    phones.add_argument("--timeout", type=float, required=True)
    phones.add_argument("--dhcp-retry", type=float, required=True)
    phones.add_argument("--dhcp")
    phones.add_argument("--server")
    phones.add_argument("--user", default="")
    parser.add_argument("--phones", type=int, default=2_000, help="static phones (default 2,000)")
    parser.add_argument(
        "--dhcp-phones",
        type=int,
        default=int(POOL_LAST) - int(POOL_FIRST) + 1,
        help="phones in the DHCP leg (default: the whole pool, 245)",
    )
    parser.add_argument(
        "--legs",
        type=lambda text: [leg for leg in text.split(",") if leg],
        default=list(LEGS),
        help=f"comma-separated, in order (default {','.join(LEGS)})",
    )
    parser.add_argument(
        "--timeout", type=float, default=300.0, help="seconds before unsettled phones fail"
    )
    parser.add_argument(
        "--dhcp-retry",
        type=float,
        default=4.0,
        help="the phones' first DHCP retransmission delay (default 4, RFC 2131)",
    )
    parser.add_argument(
        "--relay-up-cmd",
        type=lambda text: [
            str(Path(t).absolute()) if Path(t).exists() else t for t in shlex.split(text)
        ],
        help="command that runs the relay CLI instead of the venv's relay "
        '(e.g. ".venv/bin/python bench/whatif_relay.py")',
    )
    parser.add_argument("--no-pin", action="store_true", help="do not pin relay up and phones")
    parser.add_argument("--json", type=Path, help="write every figure to this file")
    parser.add_argument("--keep-log", type=Path, help="copy relay up's log (JSON lines) here")
    args = parser.parse_args(argv)
    if args.command is None:
        unknown = [leg for leg in args.legs if leg not in LEGS]
        if unknown:
            parser.error(f"unknown legs {unknown}; known: {', '.join(LEGS)}")
        if args.dhcp_phones > int(POOL_LAST) - int(POOL_FIRST) + 1:
            parser.error("--dhcp-phones cannot exceed the pool (245 addresses)")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.command == "phones":
        return phones_main(args)
    if os.geteuid() != 0:
        raise SystemExit("needs root: network namespaces, a veth pair and DHCP on port 67")
    plan_cpus(not args.no_pin)
    when = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    started = time.perf_counter()
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    report = run(args)
    report.facts["total_s"] = time.perf_counter() - started
    report.facts["cpus"] = CPUS.describe()
    finish(report, when, args_scale(args), args.json)
    return 0


@dataclass(frozen=True, slots=True)
class Scale:
    phones: int
    dhcp_phones: int
    legs: tuple[str, ...]
    timeout: float


def args_scale(args: argparse.Namespace) -> Scale:
    return Scale(args.phones, args.dhcp_phones, tuple(args.legs), args.timeout)


if __name__ == "__main__":
    sys.exit(main())
