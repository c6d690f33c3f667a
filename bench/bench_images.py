"""Firmware images over HTTPS and HTTP: relay.webfiles.send_file beside nginx (issue 6,
"Measure": a 200 MB image to 1 and to 20 parallel clients; goals >= 1.0x nginx over
HTTPS, >= 0.9x over plain HTTP, with as many worker processes).

In one run, the same FILE_MB file is downloaded by the same client (curl,
`-o /dev/null`, a new connection per download; TLS 1.3 with TLS_AES_256_GCM_SHA384,
what curl and both servers agree on) from:

- ours: an aiohttp app whose one route is `relay.webfiles.send_file` (what the relay's
  and the cloud's listeners call for a file), with `certs.tls.server_context` and a lab
  certificate (`certs.lab.ensure_lab_identity`), HTTPS and HTTP in WORKERS processes
  (`--serve`; SO_REUSEPORT when there are several);
- nginx with `worker_processes` WORKERS, its own temporary prefix and configuration (not
  the system service), the same certificate and key, `ssl_protocols TLSv1.2 TLSv1.3`,
  the relay's TLS 1.2 cipher list, `sendfile on`, `tcp_nopush on`, no access log.

For each of HTTPS N=1, HTTPS N=20, HTTP N=1 and HTTP N=20, rounds are interleaved
(ours, nginx, ours, ...) so load from elsewhere on the machine hits both alike: ROUNDS
for N=20, three times as many for N=1 (cheaper and noisier). Per side: the median MB/s
(N=20: the total bytes over the wall time of the batch) and the ratio ours / nginx; CPU
seconds per GB of the server (/proc: ours with its threads, nginx's master and workers)
and of the clients (curl, from getrusage); and the cores the rest of the machine used
meanwhile (/proc/stat busy time minus both), since the machine is shared. Every
download's status and size are checked; before timing, 3 parallel downloads per server,
scheme and TLS version (1.2, 1.3) are checked by sha256.

    .venv/bin/python bench/bench_images.py            # 200 MB, 5 rounds (~2-3 min)
    .venv/bin/python bench/bench_images.py --quick    # 50 MB, 3 rounds (~1 min)
    .venv/bin/python bench/bench_images.py --workers 2 --schemes https --json /tmp/i.json

Needs `curl` and nginx (Debian: apt-get install curl nginx-light). Unpinned by default:
ours may use both cores (worker threads encrypt), nginx's worker uses one (`--pin` puts
the servers on CPU 0 and the clients on the others). Loopback only; every server started
is stopped at the end, errors included; every download is bounded in time.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import os
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web
from report import Report, begin, finish

from certs.lab import ServerIdentity, ensure_lab_identity
from certs.tls import SERVER_CIPHERS, server_context
from relay.webfiles import send_file

HOST = "127.0.0.1"
NAME = "bench-firmware.sip.ld"
CLIENT_TIMEOUT = 600.0


@dataclass(frozen=True, slots=True)
class Scale:
    file_mb: int
    rounds: int
    parallel: int
    workers: int


FULL = Scale(200, 5, 20, 1)
QUICK = Scale(50, 3, 20, 1)


# -- our server --------------------------------------------------------------------------------


def serve(work: Path, tls_port: int, plain_port: int, workers: int) -> None:
    """`--serve`: send_file over WORK/root on both ports until SIGTERM (WORKERS processes)."""
    children = [os.fork() for _ in range(workers - 1)]
    if 0 in children:
        children = []

    async def handle(request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        if name != NAME:
            return web.Response(status=404)
        return await send_file(request, work / "root" / name, etag="bench")

    async def main() -> None:
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        app = web.Application()
        app.router.add_get("/{name}", handle)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        try:
            identity = ensure_lab_identity(work / "tls", ["localhost"], [HOST])
            share = workers > 1
            tls = server_context(identity)
            await web.TCPSite(runner, HOST, tls_port, ssl_context=tls, reuse_port=share).start()
            await web.TCPSite(runner, HOST, plain_port, reuse_port=share).start()
            print("ready", flush=True)
            await stop.wait()
        finally:
            await runner.cleanup()

    asyncio.run(main())
    for child in children:
        with contextlib.suppress(ProcessLookupError):
            os.kill(child, signal.SIGTERM)
        os.waitpid(child, 0)


# -- nginx ---------------------------------------------------------------------------------------


def nginx_config(
    work: Path, identity: ServerIdentity, tls_port: int, plain_port: int, workers: int
) -> Path:
    """The same file, certificate and TLS versions as ours; an admin's plain static server."""
    prefix = work / "nginx"
    prefix.mkdir()
    config = prefix / "nginx.conf"
    config.write_text(
        f"""
worker_processes {workers};
daemon off;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    default_type application/octet-stream;
    sendfile on;
    tcp_nopush on;
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_ciphers {SERVER_CIPHERS};
    ssl_certificate {identity.cert};
    ssl_certificate_key {identity.key};
    server {{
        listen {HOST}:{tls_port} ssl;
        root {work / "root"};
    }}
    server {{
        listen {HOST}:{plain_port};
        root {work / "root"};
    }}
}}
"""
    )
    return config


# -- processes -----------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


def listening(port: int, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection((HOST, port), 1):
            return True
        time.sleep(0.1)
    return False


@contextlib.contextmanager
def running(
    name: str, command: list[str], ports: Sequence[int], work: Path
) -> Iterator[subprocess.Popen[bytes]]:
    """A server until the block ends; its stderr goes to WORK/<name>.log (shown if it fails)."""
    log = work / f"{name}.log"
    with log.open("wb") as err:
        proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=err)
    try:
        if not all(listening(port) for port in ports):
            raise RuntimeError(f"{name} does not listen: {log.read_text(errors='replace')}")
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, its live children (nginx's workers) and its
    reaped ones."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    pids = [pid]
    with contextlib.suppress(OSError):
        pids += [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    for each in pids:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{each}/stat").read_text().rsplit(")", 1)[1].split()
            # utime, stime, cutime, cstime: fields 14-17 of proc(5), counted after the name.
            total += sum(int(value) for value in fields[11:15]) / tick
    return total


# -- downloads -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Target:
    """One server and protocol as curl reaches it."""

    name: str
    url: str
    ca: Path
    pid: int


def curl(target: Target, out: str, pin: Sequence[str], *tls: str) -> list[str]:
    return [
        *pin,
        "curl",
        "--silent",
        "--show-error",
        "--max-time",
        str(int(CLIENT_TIMEOUT)),
        "--cacert",
        str(target.ca),
        *tls,
        "--fail",
        "-o",
        out,
        # To stderr: with `-o -` the body is stdout.
        "-w",
        "%{stderr}%{http_code} %{size_download}",
        target.url,
    ]


def download(target: Target, size: int, pin: Sequence[str], n: int) -> float:
    """N curl downloads at once; the seconds until the last one ended (each checked)."""
    started = time.perf_counter()
    procs = [
        subprocess.Popen(
            curl(target, "/dev/null", pin), stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        for _ in range(n)
    ]
    failed = []
    for proc in procs:
        _, err = proc.communicate(timeout=CLIENT_TIMEOUT)
        if proc.returncode != 0 or err.decode() != f"200 {size}":
            failed.append(err.decode(errors="replace"))
    if failed:
        raise RuntimeError(f"{len(failed)} of {n} downloads from {target.name} failed: {failed}")
    return time.perf_counter() - started


def check_intact(target: Target, digest: str, n: int, pin: Sequence[str]) -> None:
    """N parallel downloads, each hashed as it arrives, for every TLS version (HTTPS)."""
    versions: Sequence[tuple[str, ...]] = (
        (("--tlsv1.2", "--tls-max", "1.2"), ("--tlsv1.3",))
        if target.url.startswith("https")
        else ((),)
    )
    for tls in versions:
        hashes = [
            subprocess.Popen(
                ["sha256sum"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
            )
            for _ in range(n)
        ]
        procs = []
        for hasher in hashes:
            assert hasher.stdin is not None and hasher.stdout is not None
            procs.append(
                subprocess.Popen(
                    curl(target, "-", pin, *tls), stdout=hasher.stdin, stderr=subprocess.PIPE
                )
            )
            hasher.stdin.close()  # curl holds the only write end: sha256sum sees its EOF
        for proc, hasher in zip(procs, hashes, strict=True):
            _, err = proc.communicate(timeout=CLIENT_TIMEOUT)
            assert hasher.stdout is not None
            got = hasher.stdout.read().split()[0]
            hasher.wait(timeout=CLIENT_TIMEOUT)
            hasher.stdout.close()
            if proc.returncode != 0 or got != digest:
                raise RuntimeError(f"{target.name} {tls}: not intact ({got}): {err!r}")


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def busy_seconds() -> float:
    """CPU seconds the whole machine has spent busy (all cores; /proc/stat)."""
    fields = [int(value) for value in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    # user nice system idle iowait irq softirq steal ...: idle and iowait are not busy.
    return (sum(fields[:8]) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def clients_seconds() -> float:
    """CPU seconds of this process's reaped children: the curl clients."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


@dataclass(slots=True)
class Tally:
    """One side's rounds in one section."""

    rates: list[float] = field(default_factory=list)
    wall: float = 0.0
    server: float = 0.0
    clients: float = 0.0
    others: float = 0.0


def compare(
    report: Report,
    section: str,
    sides: Sequence[Target],
    size: int,
    n: int,
    rounds: int,
    pin: Sequence[str],
) -> None:
    """Interleaved rounds; median MB/s of each, ours / nginx, CPU seconds per GB of the
    server and of the clients, and how much CPU the rest of the machine took meanwhile."""
    tallies = {side.name: Tally() for side in sides}
    for _ in range(rounds):
        for side in sides:
            tally = tallies[side.name]
            server, clients, busy = cpu_seconds(side.pid), clients_seconds(), busy_seconds()
            seconds = download(side, size, pin, n)
            server = cpu_seconds(side.pid) - server
            clients = clients_seconds() - clients
            tally.others += busy_seconds() - busy - server - clients
            tally.server += server
            tally.clients += clients
            tally.wall += seconds
            tally.rates.append(n * size / 1e6 / seconds)
    report.facts[f"{section} MB/s"] = {name: tally.rates for name, tally in tallies.items()}
    gigabytes = rounds * n * size / 1e9
    for name, tally in tallies.items():
        spread = f"{min(tally.rates):,.0f}-{max(tally.rates):,.0f}"
        median = statistics.median(tally.rates)
        report.add(section, f"{name}: median MB/s (min-max)", f"{median:,.0f} ({spread})")
        report.add(
            section,
            f"{name}: CPU s per GB, server / clients; others' cores",
            f"{tally.server / gigabytes:.2f} / {tally.clients / gigabytes:.2f}; "
            f"{max(0.0, tally.others) / tally.wall:.2f}",
        )
    ours, peer = (statistics.median(tallies[side.name].rates) for side in sides)
    goal = 1.0 if section.startswith("HTTPS") else 0.9
    report.add(
        section, "ours / nginx", f"x{ours / peer:.2f}", f">= x{goal:.1f}", ours >= goal * peer
    )


# -- the run -------------------------------------------------------------------------------------


def run(scale: Scale, args: argparse.Namespace) -> Report:
    report = Report()
    started = time.perf_counter()
    nginx = args.nginx or shutil.which("nginx") or "/usr/sbin/nginx"
    if shutil.which("curl") is None or not Path(nginx).exists():
        raise SystemExit("curl and nginx are needed (apt-get install curl nginx-light)")
    pinned = args.pin and (os.cpu_count() or 1) >= 2 and shutil.which("taskset")
    server_pin = ["taskset", "-c", "0"] if pinned else []
    client_pin = ["taskset", "-c", f"1-{(os.cpu_count() or 2) - 1}"] if pinned else []
    report.facts["pinned"] = bool(pinned)
    with tempfile.TemporaryDirectory(prefix="bench-images-") as tmp:
        work = Path(tmp)
        work.chmod(0o755)  # nginx's workers run as www-data
        root = work / "root"
        root.mkdir(mode=0o755)
        size = scale.file_mb * 1_000_000
        with (root / NAME).open("wb") as file:
            for _ in range(scale.file_mb):
                file.write(os.urandom(1_000_000))
        (root / NAME).chmod(0o644)
        digest = sha256(root / NAME)
        identity = ensure_lab_identity(work / "tls", ["localhost"], [HOST])
        identity.key.chmod(0o644)  # read by nginx's master as root; the directory is temporary
        ports = [free_port() for _ in range(4)]
        ours_command = [
            *server_pin,
            sys.executable,
            str(Path(__file__).resolve()),
            "--serve",
            str(work),
            "--ports",
            f"{ports[0]},{ports[1]}",
            "--workers",
            str(scale.workers),
        ]
        config = nginx_config(work, identity, ports[2], ports[3], scale.workers)
        nginx_command = [*server_pin, nginx, "-p", str(work / "nginx"), "-c", str(config)]
        with (
            running("ours", ours_command, ports[:2], work) as ours,
            running("nginx", nginx_command, ports[2:], work) as peer,
        ):
            for scheme, (ours_port, peer_port) in (
                ("https", (ports[0], ports[2])),
                ("http", (ports[1], ports[3])),
            ):
                if scheme not in args.schemes.split(","):
                    continue
                sides = (
                    Target(
                        "ours", f"{scheme}://{HOST}:{ours_port}/{NAME}", identity.ca_cert, ours.pid
                    ),
                    Target(
                        "nginx", f"{scheme}://{HOST}:{peer_port}/{NAME}", identity.ca_cert, peer.pid
                    ),
                )
                for side in sides:
                    check_intact(side, digest, 3, client_pin)
                label = scheme.upper()
                for n, rounds in ((1, 3 * scale.rounds), (scale.parallel, scale.rounds)):
                    print(f"\n-- {label}, {scale.file_mb} MB to {n} at once", flush=True)
                    compare(report, f"{label} N={n}", sides, size, n, rounds, client_pin)
    report.facts["total_s"] = time.perf_counter() - started
    report.facts["load_avg"] = os.getloadavg()
    print(f"load average after: {os.getloadavg()}", flush=True)
    return report


def parse_args(argv: Sequence[str] | None) -> tuple[Scale, argparse.Namespace]:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="50 MB, 3 rounds")
    parser.add_argument("--file-mb", type=int)
    parser.add_argument("--rounds", type=int)
    parser.add_argument("--parallel", type=int)
    parser.add_argument("--schemes", default="https,http", help="which of https,http to run")
    parser.add_argument("--workers", type=int, default=1, help="processes of each server")
    parser.add_argument("--nginx", help="nginx executable (default: on PATH or /usr/sbin)")
    parser.add_argument("--pin", action="store_true", help="servers on CPU 0, clients elsewhere")
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    parser.add_argument("--serve", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--ports", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    base = QUICK if args.quick else FULL
    scale = Scale(
        args.file_mb or base.file_mb,
        args.rounds or base.rounds,
        args.parallel or base.parallel,
        args.workers,
    )
    return scale, args


def main(argv: Sequence[str] | None = None) -> int:
    scale, args = parse_args(argv)
    if args.serve is not None:
        tls_port, plain_port = (int(port) for port in args.ports.split(","))
        serve(args.serve, tls_port, plain_port, args.workers)
        return 0
    when = begin("bench_images", scale)
    report = run(scale, args)
    finish(report, when, scale, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
