"""FTP: our phone-facing server beside vsftpd (issue 5, "Measure": 200 MB, goal >= 0.8x).

In one run, a firmware file of FILE_MB (200 MB) is downloaded with the same
client (curl, `-o /dev/null`) from:

- ours: `relay.frontend.ftp.FtpFrontend` serving the file as an image the
  download agent published (`<store>/blobs/<sha256>` listed in
  `<store>/index.json`, read through `PublishedImages`; sendfile(2) on plain
  FTP), requested by its file name at the root, in a subprocess (`--serve`)
  that also runs the embedded cloud whose provisioning service checks every
  login (a relay registered with it, exactly as `relay up` wires them);
- vsftpd, in the foreground with a generated configuration (anonymous,
  read-only, sendfile on by default) over a directory holding the same file
  under the same name (a hard link of the blob: the same inode).

bench/published.py writes the store exactly as download_agent.store does.

One at a time (N=1) and 10 at once (N=10), runs interleaved (ours, vsftpd,
ours, ...) so that load from elsewhere on the machine hits both alike; the
median MB/s of each and the ratio ours/vsftpd. N=10 is the total bytes over the
wall time of the batch. Also our server's CPU seconds per GB sent (/proc; not
vsftpd's, whose forked sessions are not all accounted, see `compare`).
The fixed cost of a session (connect, login, a 1 KB file) is measured first:
ours asks the cloud at every login. Informational rows (no peer): ours over
FTPS (AUTH TLS, PROT P; no sendfile), and a RELAYED_MB file the relay does not
have, streamed from the cloud (the cloud's resource files are below 50 MB).
Every download's size is checked, and the first of each kind its sha256.

    .venv/bin/python bench/bench_ftp.py               # 200 MB, 5 runs (N=1), 3 runs (N=10)
    .venv/bin/python bench/bench_ftp.py --quick       # 20 MB, 2 and 1 runs
    .venv/bin/python bench/bench_ftp.py --json /tmp/ftp.json

Needs `curl` and `vsftpd` (Debian: apt-get install curl vsftpd; the package's
own service need not run). Servers are pinned to CPU 0 and clients to the
other CPUs when there are at least 2 (`--no-pin` to leave placement to the
kernel). Loopback only; every server started is stopped at the end, errors
included; every download is bounded in time.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from aiohttp import web
from bench_provisioning import proc_status, raise_nofile
from published import publish_file
from report import Report, begin, finish

from certs.lab import ensure_lab_identity
from certs.tls import client_context, server_context
from relay import __version__
from relay.cloud.api.phones import PhoneService, build_phone_app
from relay.cloud.controlplane import CloudWorker, ControlPlane
from relay.frontend.firmware import PublishedImages
from relay.frontend.ftp import FtpFrontend
from relay.frontend.upstream import Upstream
from relay.sync.messages import Registration

HOST = "127.0.0.1"
USER = "phones"
PASSWORD = "bench-provisioning-password"
LOCAL = "bench-firmware.sip.ld"
RELAYED = "bench-relayed.sip.ld"
TINY = "bench-tiny.sip.ld"
TINY_BYTES = 1000
CLIENT_TIMEOUT = 600.0


@dataclass(frozen=True, slots=True)
class Scale:
    file_mb: int
    runs: int
    parallel: int
    parallel_runs: int
    relayed_mb: int


FULL = Scale(200, 5, 10, 3, 40)
QUICK = Scale(20, 2, 10, 1, 10)


# -- our server --------------------------------------------------------------------------------


def serve(work: Path, port: int) -> None:
    """`--serve`: the embedded cloud and our FTP server over the store WORK/store, until
    SIGTERM."""

    async def main() -> None:
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        plane = ControlPlane(work / "cloud")
        worker = CloudWorker(plane)
        runner = web.AppRunner(
            build_phone_app(PhoneService(worker)), access_log=None, handle_signals=False
        )
        try:
            await worker.call(plane.bootstrap)
            account = {"provisioning_account": {"user": USER, "password": PASSWORD}}
            await worker.call(plane.tenancy.update, account, "bench")
            relayed = (work / RELAYED).read_bytes()
            await worker.call(plane.files.put_resource, RELAYED, relayed, "bench")
            identity = ensure_lab_identity(work / "tls", ["localhost"], [HOST])
            await runner.setup()
            await web.TCPSite(runner, HOST, 0, ssl_context=server_context(identity)).start()
            tenant = (await worker.call(plane.tenancy.tenant))["id"]
            pin = (await worker.call(plane.relays.pin))["pin"]
            registration = Registration(tenant, pin, "bench-ftp", __version__, (HOST,))
            relay = await worker.call(plane.relays.register, registration, HOST)
            upstream = Upstream(
                f"https://{HOST}:{runner.addresses[0][1]}/",
                relay.relay_id,
                relay.secret,
                tls=client_context(identity.ca_cert),
            )
            images = PublishedImages(work / "store")
            ftp = FtpFrontend(HOST, port, upstream, images, tls=server_context(identity))
            await ftp.start()
            try:
                print(f"ready {identity.ca_cert}", flush=True)
                await stop.wait()
            finally:
                await ftp.close()
                await upstream.aclose()
        finally:
            await runner.cleanup()
            worker.close()

    raise_nofile()
    asyncio.run(main())


# -- servers -------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


def greets(port: int, timeout: float = 30.0) -> bool:
    """True once the server on `port` sends its 220 greeting."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection((HOST, port), 1) as probe:
            probe.settimeout(5)
            if probe.recv(64).startswith(b"220"):
                return True
        time.sleep(0.1)
    return False


@contextlib.contextmanager
def running(
    name: str, command: list[str], port: int, work: Path
) -> Iterator[subprocess.Popen[bytes]]:
    """A server until the block ends; its stderr goes to WORK/<name>.log (shown if it fails)."""
    log = work / f"{name.replace(' ', '-')}.log"
    with log.open("wb") as err:
        proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=err)
    try:
        if not greets(port):
            raise RuntimeError(
                f"{name} does not answer on {port}: {log.read_text(errors='replace')}"
            )
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def vsftpd_config(work: Path, root: Path, port: int) -> Path:
    """Anonymous and read-only over ROOT, in the foreground on HOST:PORT."""
    empty = work / "vsftpd-empty"
    empty.mkdir(mode=0o755)
    config = work / "vsftpd.conf"
    config.write_text(
        "\n".join(
            (
                "listen=YES",
                "listen_ipv6=NO",
                f"listen_address={HOST}",
                f"listen_port={port}",
                "background=NO",
                "anonymous_enable=YES",
                "no_anon_password=YES",
                f"anon_root={root}",
                "local_enable=NO",
                "write_enable=NO",
                "xferlog_enable=NO",
                "dirmessage_enable=NO",
                "connect_from_port_20=NO",
                "seccomp_sandbox=NO",
                f"secure_chroot_dir={empty}",
                "max_clients=200",
                "max_per_ip=200",
                "",
            )
        )
    )
    return config


# -- downloads -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Target:
    """One server as curl reaches it."""

    name: str
    port: int
    login: tuple[str, ...]
    pid: int


def cpu_seconds(pid: int) -> tuple[float, float]:
    """User and system CPU time of a process (all its threads) and its reaped children."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    # utime, stime, cutime, cstime: fields 14-17 of proc(5), counted after the name.
    utime, stime, cutime, cstime = (int(value) for value in fields[11:15])
    tick = os.sysconf("SC_CLK_TCK")
    return (utime + cutime) / tick, (stime + cstime) / tick


def curl(target: Target, name: str, out: str, pin: list[str]) -> list[str]:
    return [
        *pin,
        "curl",
        "--silent",
        "--show-error",
        "--max-time",
        str(int(CLIENT_TIMEOUT)),
        *target.login,
        "-o",
        out,
        "-w",
        "%{size_download}",
        f"ftp://{HOST}:{target.port}/{name}",
    ]


def download(target: Target, name: str, size: int, pin: list[str], n: int) -> float:
    """N curl downloads at once; the seconds until the last one ended (each checked)."""
    started = time.perf_counter()
    procs = [
        subprocess.Popen(
            curl(target, name, "/dev/null", pin), stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        for _ in range(n)
    ]
    for proc in procs:
        out, err = proc.communicate(timeout=CLIENT_TIMEOUT)
        if proc.returncode != 0 or int(out or b"0") != size:
            raise RuntimeError(f"curl from {target.name} failed: {err.decode(errors='replace')}")
    return time.perf_counter() - started


def check_intact(target: Target, name: str, digest: str, work: Path, pin: list[str]) -> None:
    out = work / "check"
    proc = subprocess.run(
        curl(target, name, str(out), pin), capture_output=True, timeout=CLIENT_TIMEOUT, check=False
    )
    if proc.returncode != 0 or sha256(out) != digest:
        raise RuntimeError(f"{target.name}: {name} did not arrive intact: {proc.stderr!r}")
    out.unlink()


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def compare(
    report: Report,
    section: str,
    sides: Sequence[Target],
    size: int,
    n: int,
    runs: int,
    pin: list[str],
) -> None:
    """Interleaved runs of every side; median MB/s each and ours / the peer, and our
    server's CPU seconds per GB sent (less sensitive than MB/s to load from elsewhere).
    Not vsftpd's: its listener reaps sessions that end together late or never (SIGCHLD
    coalesces), so their time is missing from its children's and would flatter it."""
    rates: dict[str, list[float]] = {side.name: [] for side in sides}
    before = {side.name: cpu_seconds(side.pid) for side in sides[:1]}
    for _ in range(runs):
        for side in sides:
            seconds = download(side, LOCAL, size, pin, n)
            rates[side.name].append(n * size / 1e6 / seconds)
    # Our server is idle while the peer serves: its CPU over the section is its transfers'.
    after = {side.name: cpu_seconds(side.pid) for side in sides[:1]}
    report.facts[f"{section} MB/s"] = rates
    gigabytes = runs * n * size / 1e9
    for name, values in rates.items():
        spread = f"{min(values):,.0f}-{max(values):,.0f}"
        report.add(
            section,
            f"{name}: median MB/s (min-max)",
            f"{statistics.median(values):,.0f} ({spread})",
        )
        if name != sides[0].name:
            continue
        user, system = (
            (late - early) / gigabytes
            for late, early in zip(after[name], before[name], strict=True)
        )
        report.facts[f"{section} {name} CPU s/GB (user, system)"] = (user, system)
        report.add(
            section,
            f"{name}: server CPU per GB sent (user + system)",
            f"{user:.2f} + {system:.2f} s",
        )
    if len(sides) == 2:
        ours, peer = (statistics.median(rates[side.name]) for side in sides)
        report.add(
            section,
            f"ours / {sides[1].name}",
            f"x{ours / peer:.2f}",
            ">= x0.80",
            ours / peer >= 0.8,
        )


def single(
    report: Report, section: str, target: Target, name: str, size: int, runs: int, pin: list[str]
) -> None:
    """Informational: one side alone, one download at a time."""
    values = [size / 1e6 / download(target, name, size, pin, 1) for _ in range(runs)]
    report.facts[f"{section} MB/s"] = values
    report.add(section, "ours: median MB/s (no peer)", f"{statistics.median(values):,.0f}")


def session_cost(
    report: Report, sides: Sequence[Target], runs: int, size: int, pin: list[str]
) -> None:
    """The fixed cost of one download: connect, log in (ours asks the cloud), SIZE, RETR of
    a tiny file, QUIT; it is part of every MB/s figure above."""
    times: dict[str, list[float]] = {side.name: [] for side in sides}
    for _ in range(runs):
        for side in sides:
            times[side.name].append(download(side, TINY, size, pin, 1))
    for name, values in times.items():
        report.add(
            "session",
            f"{name}: one {size}-byte download, median",
            f"{statistics.median(values) * 1000:,.1f} ms",
        )


# -- the run -------------------------------------------------------------------------------------


def run(scale: Scale, args: argparse.Namespace) -> Report:
    report = Report()
    started = time.perf_counter()
    vsftpd = args.vsftpd or shutil.which("vsftpd") or "/usr/sbin/vsftpd"
    if shutil.which("curl") is None or not Path(vsftpd).exists():
        raise SystemExit("curl and vsftpd are needed (apt-get install curl vsftpd)")
    report.facts["nofile"] = raise_nofile()
    pinned = not args.no_pin and (os.cpu_count() or 1) >= 2 and shutil.which("taskset")
    server_pin = ["taskset", "-c", "0"] if pinned else []
    client_pin = ["taskset", "-c", f"1-{(os.cpu_count() or 2) - 1}"] if pinned else []
    report.facts["pinned"] = bool(pinned)
    with tempfile.TemporaryDirectory(prefix="bench-ftp-") as tmp:
        work = Path(tmp)
        work.chmod(0o755)  # vsftpd's anonymous sessions run as the ftp user
        root = work / "root"
        root.mkdir(mode=0o755)
        size = scale.file_mb * 1_000_000
        # The relayed file is outside the store: only the cloud has it.
        for path, megabytes in ((root / LOCAL, scale.file_mb), (work / RELAYED, scale.relayed_mb)):
            with path.open("wb") as file:
                for _ in range(megabytes):
                    file.write(os.urandom(1_000_000))
            path.chmod(0o644)
        (root / TINY).write_bytes(os.urandom(TINY_BYTES))
        (root / TINY).chmod(0o644)
        digest = sha256(root / LOCAL)
        for name in (LOCAL, TINY):
            publish_file(work / "store", root / name, filename=name)
        ours_port, peer_port = free_port(), free_port()
        ours_command = [
            *server_pin,
            sys.executable,
            str(Path(__file__).resolve()),
            "--serve",
            str(work),
            "--port",
            str(ours_port),
        ]
        config = vsftpd_config(work, root, peer_port)
        with running("our server", ours_command, ours_port, work) as server:
            ca = work / "tls" / "ca.pem"
            ours = Target("ours", ours_port, ("--user", f"{USER}:{PASSWORD}"), server.pid)
            ours_tls = Target(
                "ours (FTPS)",
                ours_port,
                ("--user", f"{USER}:{PASSWORD}", "--ssl-reqd", "--cacert", str(ca)),
                server.pid,
            )
            vsftpd_command = [*server_pin, vsftpd, str(config)]
            with running("vsftpd", vsftpd_command, peer_port, work) as listener:
                peer = Target("vsftpd", peer_port, (), listener.pid)
                for side in (ours, peer, ours_tls):
                    check_intact(side, LOCAL, digest, work, client_pin)
                print("\n-- the cost of a session (a tiny file)", flush=True)
                session_cost(report, (ours, peer), max(scale.runs, 5), TINY_BYTES, client_pin)
                print(f"\n-- {scale.file_mb} MB, one at a time: ours vs vsftpd", flush=True)
                compare(report, "N=1", (ours, peer), size, 1, scale.runs, client_pin)
                print(f"\n-- {scale.file_mb} MB, {scale.parallel} at once", flush=True)
                compare(
                    report,
                    f"N={scale.parallel}",
                    (ours, peer),
                    size,
                    scale.parallel,
                    scale.parallel_runs,
                    client_pin,
                )
            print(f"\n-- {scale.file_mb} MB over FTPS (PROT P), one at a time", flush=True)
            single(report, "FTPS N=1", ours_tls, LOCAL, size, scale.runs, client_pin)
            print(f"\n-- {scale.relayed_mb} MB streamed from the cloud, one at a time", flush=True)
            check_intact(ours, RELAYED, sha256(work / RELAYED), work, client_pin)
            single(
                report,
                "relayed N=1",
                ours,
                RELAYED,
                scale.relayed_mb * 1_000_000,
                scale.runs,
                client_pin,
            )
            status = proc_status(server.pid)
            report.add(
                "ours",
                "peak RSS of our process (cloud + FTP)",
                f"{status['VmHWM'] / 1024:,.0f} MiB",
            )
    report.facts["total_s"] = time.perf_counter() - started
    report.facts["load_avg"] = os.getloadavg()
    return report


def parse_args(argv: Sequence[str] | None) -> tuple[Scale, argparse.Namespace]:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="20 MB; 2 and 1 runs")
    parser.add_argument("--file-mb", type=int)
    parser.add_argument("--runs", type=int)
    parser.add_argument("--parallel", type=int)
    parser.add_argument("--parallel-runs", type=int)
    parser.add_argument("--relayed-mb", type=int, help="at most 49 (the cloud's resource limit)")
    parser.add_argument("--vsftpd", help="vsftpd executable (default: on PATH or /usr/sbin)")
    parser.add_argument("--no-pin", action="store_true", help="do not pin servers and clients")
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    parser.add_argument("--serve", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    base = QUICK if args.quick else FULL
    scale = Scale(
        args.file_mb or base.file_mb,
        args.runs or base.runs,
        args.parallel or base.parallel,
        args.parallel_runs or base.parallel_runs,
        min(args.relayed_mb or base.relayed_mb, 49),
    )
    return scale, args


def main(argv: Sequence[str] | None = None) -> int:
    scale, args = parse_args(argv)
    if args.serve is not None:
        serve(args.serve, args.port)
        return 0
    when = begin("bench_ftp", scale)
    report = run(scale, args)
    finish(report, when, scale, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
