"""DHCP leases per second: the relay's DHCP server against Kea's (memfile), with perfdhcp.

Issue 5's "Measure": "DHCP leases per second with perfdhcp, against Kea's
memfile server (Debian kea-dhcp4-server) in the same run, both persisting
leases. Goal >= 1.0x Kea."

Two network namespaces joined by a veth pair, nothing in the root namespace:
the server's end is 198.51.100.1/24, perfdhcp's 198.51.100.2/24 (TEST-NET-2,
RFC 5737). perfdhcp acts as a relay agent (giaddr 198.51.100.2), so every
exchange is a relayed DISCOVER-OFFER-REQUEST-ACK answered by unicast. Each
server runs in turn on the same link with the same pool (198.51.100.10-250,
lease 3600 s) and the same perfdhcp command at each rate; every ACK is
persisted before it is sent by both: ours appends to its SQLite lease log
(WAL) at each `dhcp_durability` level asked for, "fsync" (synchronous=FULL:
survives a power cut) and "process" (synchronous=NORMAL: survives kill -9,
not a power cut), and Kea writes a line to its memfile CSV without fsync
(the "process" level; lfc-interval 0: no lease file cleanup during the run).
`-R` clients (default 200) keep coming back, so each exchange renews a
lease: the pool never runs dry.

Ours runs exactly as `relay up --dhcp-interface` starts it (`start_dhcp`),
alone in its process. Figures: the ACKs perfdhcp received per second of the
test period (completed exchanges = leases granted and persisted), its drops
(no answer within 1 s), and the server's CPU time per ACK (user + system,
from /proc: what the server spent, whatever else loads the machine).

    sudo .venv/bin/python bench/bench_dhcp.py                 # rates 1000-8000/s, 10 s each
    sudo .venv/bin/python bench/bench_dhcp.py --quick         # 2 rates, 4 s each
    sudo .venv/bin/python bench/bench_dhcp.py --rates 3000 --seconds 20 --json /tmp/dhcp.json
    sudo .venv/bin/python bench/bench_dhcp.py --durability process   # one level only
    sudo .venv/bin/python bench/bench_dhcp.py --rounds 3      # each rate 3 times, interleaved

The machine may be loaded by other work, which moves every figure; with
`--rounds N` each rate runs N rounds of every server back to back (the order
rotated each round), and the table gives each server's best and its range,
the ratio of the bests, and the median of the per-round ratios (each taken
from runs a few seconds apart, under about the same load).

Needs root, `ip` (iproute2), perfdhcp (package kea-admin) and kea-dhcp4
(package kea-dhcp4-server). Everything it creates (namespaces, temporary
directory, servers) is removed or stopped when it ends, errors included.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SERVER_IP = "198.51.100.1"
CLIENT_IP = "198.51.100.2"
POOL = ("198.51.100.10", "198.51.100.250")
LEASE_SECONDS = 3600
# perfdhcp in one thread: its multi-thread mode spins a receiver thread that takes a
# core away from the server measured (this machine has two).
THREADS = "single"
BOOT_URL = "https://phones:bench@198.51.100.1:9443/"

# Ours, as relay up starts it, until SIGTERM; "ready" on stdout once it serves.
OURS = """
import asyncio, signal, sys
from pathlib import Path
from relay.config import Config
from relay.frontend.dhcpsetup import start_dhcp

async def main() -> None:
    config = Config(data_dir=Path(sys.argv[1]), dhcp_interface=sys.argv[2],
                    dhcp_pool=sys.argv[3], dhcp_lease_seconds=int(sys.argv[4]),
                    dhcp_durability=sys.argv[6])
    server = await start_dhcp(config, sys.argv[5], config.data_dir)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    print("ready", flush=True)
    await stop.wait()
    await server.close()
    print(server.counters, file=sys.stderr)

asyncio.run(main())
"""


@dataclass
class Row:
    server: str
    rate: int
    round: int
    seconds: float
    leases_per_second: float
    discover_drops: int
    request_drops: int
    sent: int
    cpu_seconds: float


def ip(*argv: str) -> None:
    subprocess.run(["ip", *argv], check=True, capture_output=True, timeout=10)


@contextlib.contextmanager
def link() -> Iterator[tuple[str, str, str]]:
    """Two namespaces and a veth pair: (server netns, client netns, server interface)."""
    tag = secrets.token_hex(3)
    server_ns, client_ns = f"benchdhcp-s{tag}", f"benchdhcp-c{tag}"
    server_if, client_if = f"bds{tag}", f"bdc{tag}"
    ip("netns", "add", server_ns)
    try:
        ip("netns", "add", client_ns)
        try:
            ip("-n", server_ns, "link", "add", server_if, "type", "veth", "peer", "name",
               client_if, "netns", client_ns)  # fmt: skip
            for ns, interface, address in (
                (server_ns, server_if, SERVER_IP),
                (client_ns, client_if, CLIENT_IP),
            ):
                ip("-n", ns, "addr", "add", f"{address}/24", "dev", interface)
                ip("-n", ns, "link", "set", "lo", "up")
                ip("-n", ns, "link", "set", interface, "up")
            yield server_ns, client_ns, server_if
        finally:
            subprocess.run(["ip", "netns", "del", client_ns], capture_output=True, check=False)
    finally:
        subprocess.run(["ip", "netns", "del", server_ns], capture_output=True, check=False)


def kea_config(interface: str, work: Path) -> dict[str, object]:
    """Kea's memfile server with the same pool, lease times and boot options as ours."""
    return {
        "Dhcp4": {
            "interfaces-config": {"interfaces": [interface], "dhcp-socket-type": "udp"},
            "lease-database": {
                "type": "memfile",
                "persist": True,
                "name": str(work / "kea-leases4.csv"),
                "lfc-interval": 0,
            },
            "valid-lifetime": LEASE_SECONDS,
            "renew-timer": LEASE_SECONDS // 2,
            "rebind-timer": LEASE_SECONDS * 7 // 8,
            "option-def": [
                {"name": "polycom-160", "code": 160, "type": "string"},
                {"name": "polycom-161", "code": 161, "type": "string"},
            ],
            "subnet4": [
                {
                    "id": 1,
                    "subnet": "198.51.100.0/24",
                    "pools": [{"pool": f"{POOL[0]} - {POOL[1]}"}],
                    "option-data": [
                        {"name": "tftp-server-name", "data": "https://198.51.100.1:9443/"},
                        {"name": "polycom-160", "data": BOOT_URL},
                        {"name": "polycom-161", "data": BOOT_URL},
                    ],
                }
            ],
            "loggers": [
                {
                    "name": "kea-dhcp4",
                    "output_options": [{"output": str(work / "kea.log")}],
                    "severity": "WARN",
                }
            ],
        }
    }


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process `pid` so far (proc(5), /proc/PID/stat fields 14, 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def serving(which: str, server_ns: str, interface: str, work: Path) -> Iterator[int]:
    """Run one server in the server namespace until the block ends (SIGTERM, then SIGKILL).

    Yields its process id (`ip netns exec` execs the server in place).
    """
    directory = work / which
    directory.mkdir()
    env = dict(os.environ)
    if which == "kea":
        config = directory / "kea-dhcp4.conf"
        config.write_text(json.dumps(kea_config(interface, directory)))
        env.update(KEA_PIDFILE_DIR=str(directory), KEA_LOCKFILE_DIR=str(directory))
        argv = ["kea-dhcp4", "-c", str(config)]
    else:
        pool = f"{POOL[0]}-{POOL[1]}"
        durability = which.removeprefix("ours-")
        argv = [sys.executable, "-c", OURS, str(directory), interface, pool,
                str(LEASE_SECONDS), BOOT_URL, durability]  # fmt: skip
    with (directory / "stderr.log").open("wb") as stderr:
        process = subprocess.Popen(
            ["ip", "netns", "exec", server_ns, *argv],
            stdout=subprocess.PIPE,
            stderr=stderr,
            env=env,
            cwd=REPO,
        )
    try:
        wait_until_serving(which, process, directory)
        yield process.pid
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=15)
        if process.stdout is not None:
            process.stdout.close()


def wait_until_serving(which: str, process: subprocess.Popen[bytes], directory: Path) -> None:
    assert process.stdout is not None
    if which.startswith("ours"):
        line = process.stdout.readline()
        if line.strip() != b"ready":
            raise SystemExit(f"our server did not start: {(directory / 'stderr.log').read_text()}")
        return
    # Kea logs nothing at WARN once it serves: give it time to open its sockets.
    time.sleep(2)
    if process.poll() is not None:
        raise SystemExit(f"kea-dhcp4 exited: {(directory / 'kea.log').read_text()}")


def perfdhcp(client_ns: str, rate: int, seconds: int, clients: int) -> tuple[str, float]:
    argv = [
        "ip", "netns", "exec", client_ns, "perfdhcp", "-4", "-g", THREADS, "-l", CLIENT_IP,
        "-R", str(clients), "-r", str(rate), "-p", str(seconds), "-W", "2000000", SERVER_IP,
    ]  # fmt: skip
    started = time.monotonic()
    done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60, check=False)
    if done.returncode not in (0, 3):
        raise SystemExit(f"perfdhcp failed ({done.returncode}): {done.stdout}{done.stderr}")
    return done.stdout, time.monotonic() - started


def figures(which: str, rate: int, round_: int, seconds: float, report: str, cpu: float) -> Row:
    """ACKs received per second of sending (perfdhcp's own "Rate" also counts the -W wait)."""
    drops = [int(n) for n in re.findall(r"^drops: (\d+)$", report, re.MULTILINE)]
    sent = [int(n) for n in re.findall(r"^sent packets: (\d+)$", report, re.MULTILINE)]
    received = [int(n) for n in re.findall(r"^received packets: (\d+)$", report, re.MULTILINE)]
    if len(drops) != 2 or len(sent) != 2 or len(received) != 2:
        raise SystemExit(f"cannot read perfdhcp's report:\n{report}")
    leases = received[1] / seconds
    return Row(which, rate, round_, seconds, leases, drops[0], drops[1], sent[0], cpu)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rates", type=int, nargs="+", default=[1000, 2000, 4000, 8000])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--clients", type=int, default=200)
    parser.add_argument(
        "--durability", nargs="+", choices=["fsync", "process"], default=["fsync", "process"]
    )
    parser.add_argument("--rounds", type=int, default=1, help="runs of every server per rate")
    parser.add_argument("--quick", action="store_true", help="rates 1000 and 4000, 4 s each")
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args()
    if args.quick:
        args.rates, args.seconds = [1000, 4000], 4
    if os.geteuid() != 0:
        raise SystemExit("needs root (network namespaces)")
    for program, package in (("perfdhcp", "kea-admin"), ("kea-dhcp4", "kea-dhcp4-server")):
        if shutil.which(program) is None:
            raise SystemExit(f"needs {program} (apt-get install {package})")
    servers = [f"ours-{level}" for level in args.durability] + ["kea"]
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="bench-dhcp-") as tmp, link() as names:
        server_ns, client_ns, interface = names
        for rate in args.rates:
            for round_ in range(args.rounds):
                for which in servers[round_ % len(servers) :] + servers[: round_ % len(servers)]:
                    work = Path(tmp) / f"{which}-{rate}-{round_}"
                    work.mkdir()
                    with serving(which, server_ns, interface, work) as pid:
                        before = cpu_seconds(pid)
                        report, _ = perfdhcp(client_ns, rate, args.seconds, args.clients)
                        cpu = cpu_seconds(pid) - before
                    rows.append(figures(which, rate, round_, args.seconds, report, cpu))
                    print(json.dumps(asdict(rows[-1])), flush=True)
    print()
    print_table(args.rates, servers, rows)
    if args.json is not None:
        args.json.write_text(json.dumps([asdict(row) for row in rows], indent=2))
    return 0


def print_table(rates: list[int], servers: list[str], rows: list[Row]) -> None:
    """Per rate: each server's best leases/s (range; drops of that run; median CPU µs/lease).

    Then, for each of ours, the ratio of its best to Kea's best and the
    median of its per-round ratios to Kea.
    """
    ours = [s for s in servers if s != "kea"]
    header = " | ".join(
        f"{s}: leases/s best (range; drops D-O / R-A; CPU µs/lease)" for s in servers
    )
    ratios = " | ".join(f"{s} / Kea: best (per round)" for s in ours)
    print(f"| offered rate | {header} | {ratios} |")
    print("|---" * (1 + len(servers) + len(ours)) + "|")
    for rate in rates:
        runs = {s: [r for r in rows if r.rate == rate and r.server == s] for s in servers}
        best = {s: max(runs[s], key=lambda r: r.leases_per_second) for s in servers}
        cells = []
        for server in servers:
            row, low = best[server], min(r.leases_per_second for r in runs[server])
            per_lease = statistics.median(cpu_per_lease(r) for r in runs[server])
            cells.append(
                f"{row.leases_per_second:,.0f} ({low:,.0f}-{row.leases_per_second:,.0f}; "
                f"{row.discover_drops:,} / {row.request_drops:,}; {per_lease:,.0f})"
            )
        for server in ours:
            paired = [
                mine.leases_per_second / kea.leases_per_second
                for mine, kea in zip(runs[server], runs["kea"], strict=True)
                if kea.leases_per_second
            ]
            kea_best = best["kea"].leases_per_second
            ratio = best[server].leases_per_second / kea_best if kea_best else 0.0
            median = statistics.median(paired) if paired else 0.0
            cells.append(f"x{ratio:.2f} (x{median:.2f})")
        print(f"| {rate:,}/s | " + " | ".join(cells) + " |")


def cpu_per_lease(row: Row) -> float:
    """The server's CPU time per lease granted, in microseconds."""
    leases = row.leases_per_second * row.seconds
    return row.cpu_seconds / leases * 1e6 if leases else 0.0


if __name__ == "__main__":
    sys.exit(main())
