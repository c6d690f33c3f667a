"""New TLS handshakes per second on the relay's provisioning listener, ECDSA P-256 vs
RSA-2048, each as a ratio to nginx with the same certificate (issue 7, "Measure").

- ours: the relay's real phone-facing HTTPS listener, `relay.frontend.stack.FrontEnd`
  (aiohttp, `certs.tls.server_context`), in one process (`--serve`). It needs no cloud for
  a handshake: its `Upstream` points at a closed port and is never called, since no
  request is sent. One FrontEnd per certificate, both in that process.
- nginx: `worker_processes 1`, its own temporary prefix and configuration, one `server`
  per certificate, the same certificate chain and key, `ssl_protocols TLSv1.2 TLSv1.3`,
  the relay's TLS 1.2 cipher list with `ssl_prefer_server_ciphers on`; otherwise nginx's
  defaults (session tickets on, no session cache).
- the client: `openssl s_time -new` (a full handshake per connection, no resumption;
  connect, handshake, close), CLIENTS of them at once for SECONDS, TLS 1.3 and 1.2.

Certificates come from `certs.lab.create_lab_certificates` (ECDSA P-256 leaf and CA; RSA
2048 leaf and CA). Before timing, `openssl s_client` checks each port serves the expected
key. Cells are interleaved (each round: every certificate and TLS version, ours and nginx
back to back, who goes first alternating by round) so the machine's other load hits both
alike. Per cell: handshakes/s (the sum of the s_time counts over the wall time); server
CPU microseconds per handshake from /proc (ours: its process, all threads; nginx: master
and worker), which does not depend on how fast the clients were, and its inverse,
handshakes per server CPU-second; the clients' CPU; and the cores the rest of the machine
used meanwhile. Ratios are ours / nginx (> 1: ours is better).

    .venv/bin/python bench/bench_tls_handshakes.py            # 3 rounds x 8 cells x 10 s (~4.5 min)
    .venv/bin/python bench/bench_tls_handshakes.py --quick    # 1 round x 8 cells x 5 s (~1 min)
    .venv/bin/python bench/bench_tls_handshakes.py --pin --json /tmp/tls.json

Needs openssl and nginx (Debian: apt-get install openssl nginx-light). `--pin` puts the
servers on CPU 0 and the clients on the others. Loopback only; every server started is
stopped at the end, errors included; every client run is bounded in time.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bench_images import busy_seconds, clients_seconds, cpu_seconds, free_port, running
from report import Report, begin, finish

from certs.lab import ServerIdentity, create_lab_certificates
from certs.tls import SERVER_CIPHERS, server_context
from relay.frontend.firmware import PublishedImages
from relay.frontend.stack import FrontEnd, FrontEndPorts
from relay.frontend.upstream import Upstream

HOST = "127.0.0.1"
FQDN = "relay.bench.example"
KEYS = ("ecdsa", "rsa")
VERSIONS = ("1.3", "1.2")
# The one line of `openssl s_time` that counts: "N connections in T.TTs; ...".
COUNTED = re.compile(rb"^(\d+) connections in [\d.]+s;", re.MULTILINE)
# Beyond SECONDS, what one s_time may take to start and finish before it is killed.
CLIENT_SLACK = 30.0


@dataclass(frozen=True, slots=True)
class Scale:
    rounds: int
    seconds: int
    clients: int


FULL = Scale(3, 10, 2)
QUICK = Scale(1, 5, 2)


def identity_of(work: Path, key: str) -> ServerIdentity:
    directory = work / key
    return ServerIdentity(directory / "ca.pem", directory / "server.pem", directory / "server.key")


# -- our server --------------------------------------------------------------------------------


def serve(work: Path, ports: Sequence[int]) -> None:
    """`--serve`: one FrontEnd HTTPS listener per certificate until SIGTERM."""

    async def main() -> None:
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        fronts = []
        try:
            for key, port in zip(KEYS, ports, strict=True):
                # Never called: a handshake sends no request to relay.
                upstream = Upstream(f"https://{HOST}:9/", "bench-relay", "unused")
                front = FrontEnd(
                    upstream,
                    PublishedImages(work / "images"),
                    server_context(identity_of(work, key)),
                    FrontEndPorts(HOST, port, None),
                )
                fronts.append(front)
                await front.start()
            print("ready", flush=True)
            await stop.wait()
        finally:
            for front in fronts:
                await front.close()

    asyncio.run(main())


# -- nginx ---------------------------------------------------------------------------------------


def nginx_config(work: Path, ports: Sequence[int]) -> Path:
    """One worker, one server per certificate, the relay's versions and TLS 1.2 suites."""
    prefix = work / "nginx"
    prefix.mkdir()
    servers = "".join(
        f"""
    server {{
        listen {HOST}:{port} ssl;
        ssl_certificate {identity_of(work, key).cert};
        ssl_certificate_key {identity_of(work, key).key};
        return 204;
    }}"""
        for key, port in zip(KEYS, ports, strict=True)
    )
    config = prefix / "nginx.conf"
    config.write_text(
        f"""
worker_processes 1;
daemon off;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_ciphers {SERVER_CIPHERS};
    ssl_prefer_server_ciphers on;{servers}
}}
"""
    )
    return config


# -- clients -------------------------------------------------------------------------------------


def check_served(port: int, key: str, version: str) -> str:
    """One s_client handshake: the negotiated suite, after checking the key served."""
    flag = "-tls1_3" if version == "1.3" else "-tls1_2"
    done = subprocess.run(
        ["openssl", "s_client", "-connect", f"{HOST}:{port}", "-servername", FQDN, flag],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=CLIENT_SLACK,
        check=False,
    )
    out = done.stdout.decode(errors="replace")
    wanted = "Server public key is 256 bit" if key == "ecdsa" else "Server public key is 2048 bit"
    suite = re.search(r"^New, (TLSv1\.\d), Cipher is (\S+)", out, re.MULTILINE)
    if done.returncode != 0 or wanted not in out or suite is None:
        raise RuntimeError(f"port {port} ({key}, TLS {version}) is not as expected:\n{out}")
    return f"{suite.group(1)} {suite.group(2)}"


def handshakes(port: int, version: str, scale: Scale, pin: Sequence[str]) -> tuple[int, float]:
    """CLIENTS `openssl s_time -new` at once: handshakes completed and the wall seconds."""
    flag = "-tls1_3" if version == "1.3" else "-tls1_2"
    command = [
        *pin,
        "openssl",
        "s_time",
        "-connect",
        f"{HOST}:{port}",
        "-new",
        flag,
        "-time",
        str(scale.seconds),
    ]
    started = time.perf_counter()
    procs = [
        subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        for _ in range(scale.clients)
    ]
    total, failed = 0, []
    for proc in procs:
        try:
            out, _ = proc.communicate(timeout=scale.seconds + CLIENT_SLACK)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
        counted = COUNTED.search(out)
        if proc.returncode != 0 or counted is None:
            failed.append(out.decode(errors="replace")[-500:])
        else:
            total += int(counted.group(1))
    if failed:
        raise RuntimeError(f"{len(failed)} s_time clients on port {port} failed: {failed}")
    return total, time.perf_counter() - started


# -- the run -------------------------------------------------------------------------------------


@dataclass(slots=True)
class Tally:
    """One side in one cell (certificate, TLS version), over the rounds."""

    rates: list[float] = field(default_factory=list)
    count: int = 0
    wall: float = 0.0
    server: float = 0.0
    clients: float = 0.0
    others: float = 0.0


def measure(tally: Tally, pid: int, port: int, version: str, scale: Scale, pin: list[str]) -> None:
    server, clients, busy = cpu_seconds(pid), clients_seconds(), busy_seconds()
    count, wall = handshakes(port, version, scale, pin)
    server = cpu_seconds(pid) - server
    clients = clients_seconds() - clients
    tally.others += busy_seconds() - busy - server - clients
    tally.server += server
    tally.clients += clients
    tally.count += count
    tally.wall += wall
    tally.rates.append(count / wall)


def summarize(report: Report, section: str, ours: Tally, peer: Tally) -> None:
    report.facts[f"{section} handshakes/s"] = {"ours": ours.rates, "nginx": peer.rates}
    for name, tally in (("ours", ours), ("nginx", peer)):
        spread = f"{min(tally.rates):,.0f}-{max(tally.rates):,.0f}"
        report.add(
            section,
            f"{name}: handshakes/s median (min-max)",
            f"{statistics.median(tally.rates):,.0f} ({spread})",
        )
        report.add(
            section,
            f"{name}: server CPU us/handshake; clients' cores; others' cores",
            f"{1e6 * tally.server / tally.count:,.0f}; {tally.clients / tally.wall:.2f}; "
            f"{max(0.0, tally.others) / tally.wall:.2f}",
        )
    rate = statistics.median(ours.rates) / statistics.median(peer.rates)
    report.add(section, "ours / nginx: handshakes/s", f"x{rate:.2f}")
    # Handshakes per server CPU-second: the capacity of one core, whatever the clients did.
    capacity = (ours.count / ours.server) / (peer.count / peer.server)
    report.add(section, "ours / nginx: handshakes per server CPU-second", f"x{capacity:.2f}")


def run(scale: Scale, args: argparse.Namespace) -> Report:
    report = Report()
    started = time.perf_counter()
    nginx = args.nginx or shutil.which("nginx") or "/usr/sbin/nginx"
    if shutil.which("openssl") is None or not Path(nginx).exists():
        raise SystemExit("openssl and nginx are needed (apt-get install openssl nginx-light)")
    pinned = args.pin and (os.cpu_count() or 1) >= 2 and shutil.which("taskset")
    server_pin = ["taskset", "-c", "0"] if pinned else []
    client_pin = ["taskset", "-c", f"1-{(os.cpu_count() or 2) - 1}"] if pinned else []
    report.facts["pinned"] = bool(pinned)
    with tempfile.TemporaryDirectory(prefix="bench-tls-") as tmp:
        work = Path(tmp)
        work.chmod(0o755)  # nginx's worker runs as another user
        for key in KEYS:
            create_lab_certificates(
                work / key,
                [FQDN],
                [HOST],
                rsa_bits=2048 if key == "rsa" else None,
                pfx_password="bench",
            )
        ours_ports = [free_port() for _ in KEYS]
        peer_ports = [free_port() for _ in KEYS]
        ours_command = [
            *server_pin,
            sys.executable,
            str(Path(__file__).resolve()),
            "--serve",
            str(work),
            "--ports",
            ",".join(map(str, ours_ports)),
        ]
        config = nginx_config(work, peer_ports)
        nginx_command = [*server_pin, nginx, "-p", str(work / "nginx"), "-c", str(config)]
        with (
            running("ours", ours_command, ours_ports, work) as ours,
            running("nginx", nginx_command, peer_ports, work) as peer,
        ):
            cells = [(key, version) for key in KEYS for version in VERSIONS]
            for key, version in cells:
                port = KEYS.index(key)
                suites = {check_served(p[port], key, version) for p in (ours_ports, peer_ports)}
                report.facts[f"{key} TLS {version} suite"] = sorted(suites)
                print(f"{key} TLS {version}: {', '.join(sorted(suites))}", flush=True)
            tallies = {(cell, side): Tally() for cell in cells for side in ("ours", "nginx")}
            for number in range(scale.rounds):
                print(f"\n-- round {number + 1} of {scale.rounds}", flush=True)
                for key, version in cells:
                    index = KEYS.index(key)
                    sides = [
                        ("ours", ours.pid, ours_ports[index]),
                        ("nginx", peer.pid, peer_ports[index]),
                    ]
                    # Who goes first alternates by round: neither always meets a cold cache.
                    for side, pid, port in sides[:: -1 if number % 2 else 1]:
                        tally = tallies[(key, version), side]
                        measure(tally, pid, port, version, scale, client_pin)
                        print(f"  {key} TLS {version} {side}: {tally.rates[-1]:,.0f}/s", flush=True)
            print(flush=True)
            for key, version in cells:
                section = f"{'ECDSA P-256' if key == 'ecdsa' else 'RSA-2048'} TLS {version}"
                summarize(
                    report,
                    section,
                    tallies[(key, version), "ours"],
                    tallies[(key, version), "nginx"],
                )
    report.facts["total_s"] = time.perf_counter() - started
    report.facts["load_avg"] = os.getloadavg()
    print(f"load average after: {os.getloadavg()}", flush=True)
    return report


def parse_args(argv: Sequence[str] | None) -> tuple[Scale, argparse.Namespace]:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="1 round of 5 s cells")
    parser.add_argument("--rounds", type=int)
    parser.add_argument("--seconds", type=int, help="length of each cell (s_time -time)")
    parser.add_argument("--clients", type=int, help="s_time processes at once")
    parser.add_argument("--nginx", help="nginx executable (default: on PATH or /usr/sbin)")
    parser.add_argument("--pin", action="store_true", help="servers on CPU 0, clients elsewhere")
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    parser.add_argument("--serve", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--ports", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    base = QUICK if args.quick else FULL
    scale = Scale(
        args.rounds or base.rounds, args.seconds or base.seconds, args.clients or base.clients
    )
    return scale, args


def main(argv: Sequence[str] | None = None) -> int:
    scale, args = parse_args(argv)
    if args.serve is not None:
        serve(args.serve, [int(port) for port in args.ports.split(",")])
        return 0
    when = begin("bench_tls_handshakes", scale)
    report = run(scale, args)
    finish(report, when, scale, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
