"""TFTP: our server beside tftpd-hpa and atftpd (issue 5, "Measure"), and 2,000 transfers at once.

In one run:

1. throughput of one 200 MB file at blksize 1468, fetched with the same client
   (the atftp program) from every server, runs interleaved (ours, theirs,
   ours, ...) so that load from elsewhere on the machine hits both sides alike;
   the median MB/s of each side and the ratio ours/theirs:
   - lock-step (no windowsize): ours vs `in.tftpd` (tftpd-hpa), which has no
     windowsize; goal >= 1.0x;
   - windowsize 32 (RFC 7440): ours vs `atftpd`; goal >= 1.0x.
   What each server really negotiated is read from `atftp --trace` (its OACK).
2. 2,000 transfers at once of a file-backed image from our server, by a
   minimal lock-step asyncio client in this process (as phones fetch: blksize
   1468, RRQ and ACK retransmitted on timeout): how many completed intact,
   how many failed and why, the wall time. Goal: all complete, none failed.

Our server runs as a subprocess (`--serve`): `relay.frontend.tftp.TftpServer`
(requests on its asyncio loop, transfers on its engine thread,
relay.frontend.tftp_engine) with the relay's firmware path: the files are
published into a download-agent store (`<store>/blobs/<sha256>` listed in
`<store>/index.json`, written by bench/published.py as download_agent.store
writes them), requested by file name, and served by `PublishedImages.open`
then `FileSource` (pread on an open descriptor), exactly what
relay.frontend.tftp_relay does for a published image. The peers serve a
directory holding the same files (hard links of the blobs) under the same
names. `--profile` samples whichever of its threads holds the GIL: the
engine's during transfers.

    .venv/bin/python bench/bench_tftp.py                  # 200 MB x 3 runs each, 2,000 at once
    .venv/bin/python bench/bench_tftp.py --quick          # 10 MB x 2 runs, 200 at once
    .venv/bin/python bench/bench_tftp.py --profile /tmp/prof   # + py-spy of our server

Needs `atftp` (client), `in.tftpd` from tftpd-hpa and `atftpd` (Debian: apt-get
install atftp tftpd-hpa atftpd). tftpd-hpa and atftpd conflict as Debian
packages (both ship /usr/sbin/in.tftpd): install tftpd-hpa, and unpack atftpd
beside it with `apt-get download atftpd && dpkg-deb -x atftpd_*.deb /opt/atftpd`
(found there, or in .ci/cache/atftpd where .ci/test unpacks it, or pass
--atftpd). A missing peer is reported and its rows skipped. Loopback only;
every server started is stopped at the end, errors included; every transfer
is bounded in time.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import grp
import hashlib
import os
import pwd
import re
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from bench_provisioning import print_profiles, proc_status, profiled, raise_nofile
from published import publish_file
from report import Report, begin, finish

from relay.frontend.firmware import PublishedImages
from relay.frontend.tftp import Address, FileSource, TftpConfig, TftpServer
from relay.proto.tftp.packet import (
    Data,
    Error,
    OAck,
    TftpError,
    build_ack,
    build_request,
    parse_packet,
)

HOST = "127.0.0.1"
BLKSIZE = 1468  # a 1500-byte MTU less IPv4, UDP and TFTP headers (RFC 2348)
WINDOWSIZE = 32
BIG = "bench-firmware.ld"
SMALL = "bench-image.ld"
# Where .ci/test unpacks atftpd beside the checkout, and the place this file's notes suggest.
ATFTPD_UNPACKED = (
    Path(__file__).resolve().parents[1] / ".ci/cache/atftpd/usr/sbin/atftpd",
    Path("/opt/atftpd/usr/sbin/atftpd"),
)
CLIENT_TIMEOUT = 600.0


@dataclass(frozen=True, slots=True)
class Scale:
    file_mb: int
    runs: int
    concurrent: int
    concurrent_kib: int


FULL = Scale(200, 3, 2_000, 256)
QUICK = Scale(10, 2, 200, 64)


# -- servers ---------------------------------------------------------------------------------


def serve(store: Path, port: int) -> None:
    """`--serve`: our server over the images published in STORE, until SIGTERM (a separate
    process, own GIL)."""

    async def main() -> None:
        images = PublishedImages(store)

        def resolve(name: str, _client: Address) -> FileSource | None:
            opened = images.open(name)
            return None if opened is None else FileSource(opened[0])

        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        config = TftpConfig(host=HOST, port=port, max_sessions=10_000, resolve_timeout=30.0)
        async with TftpServer(resolve, config):
            print("ready", flush=True)
            await stop.wait()

    raise_nofile()
    asyncio.run(main())


def serve_floor(kind: str, root: Path, port: int) -> None:
    """`--floor KIND`: the least a Python lock-step server can do, to read our figures against.

    One transfer at a time, no checks, no timers, no options but blksize: every
    DATA packet of the file built in advance, then per ACK one recvfrom and one
    sendto, in a plain blocking loop ("blocking") or in asyncio add_reader
    callbacks as our server runs ("asyncio"). Not a server: a floor.
    """
    listener = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    listener.bind((HOST, port))
    oack = b"\x00\x06blksize\x00" + str(BLKSIZE).encode() + b"\x00"
    files: dict[str, list[bytes]] = {}

    def packets(request: bytes) -> list[bytes] | None:
        name = request[2:].split(b"\0", 1)[0].decode(errors="replace")
        if name not in files and (root / name).is_file():
            data = (root / name).read_bytes()
            files[name] = [
                struct.pack("!HH", 3, (n + 1) & 0xFFFF) + data[o : o + BLKSIZE]
                for n, o in enumerate(range(0, len(data) + 1, BLKSIZE))
            ]
        return files.get(name)

    if kind == "blocking":
        while True:
            request, client = listener.recvfrom(2048)
            blocks = packets(request)
            if blocks is None:
                listener.sendto(b"\x00\x05\x00\x01no\x00", client)
                continue
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
                sock.bind((HOST, 0))
                sock.sendto(oack, client)
                for block in blocks:
                    sock.recvfrom(2048)
                    sock.sendto(block, client)
                sock.recvfrom(2048)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        loop.add_signal_handler(signal.SIGTERM, stop.set)

        def on_request() -> None:
            request, client = listener.recvfrom(2048)
            blocks = packets(request)
            if blocks is None:
                listener.sendto(b"\x00\x05\x00\x01no\x00", client)
                return
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.setblocking(False)
            sock.bind((HOST, 0))
            sent = iter(blocks)

            def on_ack() -> None:
                sock.recvfrom(2048)
                block = next(sent, None)
                if block is None:
                    loop.remove_reader(sock.fileno())
                    sock.close()
                    return
                sock.sendto(block, client)

            loop.add_reader(sock.fileno(), on_ack)
            sock.sendto(oack, client)

        listener.setblocking(False)
        loop.add_reader(listener.fileno(), on_request)
        await stop.wait()

    asyncio.run(main())


@dataclass(frozen=True, slots=True)
class Peer:
    name: str
    command: list[str]


def tftpd_hpa(binary: str | None) -> str | None:
    """in.tftpd if it is tftpd-hpa's (atftpd also installs one under that name)."""
    path = binary or shutil.which("in.tftpd")
    if path is None:
        return None
    proc = subprocess.run([path, "-V"], capture_output=True, text=True, timeout=10, check=False)
    return path if "tftp-hpa" in proc.stdout + proc.stderr else None


def atftpd(binary: str | None) -> str | None:
    if binary:
        return binary
    found = shutil.which("atftpd")
    for unpacked in ATFTPD_UNPACKED:
        if found is None and unpacked.exists():
            found = str(unpacked)
    return found


def peers(root: Path, args: argparse.Namespace) -> dict[str, Peer | None]:
    """The command lines of the peers, in the foreground on a free port each (None: missing)."""
    user = pwd.getpwuid(os.getuid()).pw_name
    group = grp.getgrgid(os.getgid()).gr_name
    hpa, atftp_d = tftpd_hpa(args.in_tftpd), atftpd(args.atftpd)
    out: dict[str, Peer | None] = {"in.tftpd": None, "atftpd": None}
    if hpa is not None:
        port = free_udp_port()
        # -L: foreground; -s: chroot into ROOT; tftpd-hpa answers from ROOT/<name>.
        out["in.tftpd"] = Peer(
            "in.tftpd", [hpa, "-L", "-s", str(root), "--address", f"{HOST}:{port}"]
        )
    if atftp_d is not None:
        port = free_udp_port()
        out["atftpd"] = Peer(
            "atftpd",
            [
                atftp_d,
                "--daemon",
                "--no-fork",
                "--port",
                str(port),
                "--bind-address",
                HOST,
                "--user",
                user,
                "--group",
                group,
                "--maxthread",
                "4000",
                "--logfile",
                "/dev/null",
                str(root),
            ],
        )
    return out


def port_of(command: Sequence[str]) -> int:
    for index, word in enumerate(command):
        if word == "--port":
            return int(command[index + 1])
        if word == "--address":
            return int(command[index + 1].rsplit(":", 1)[1])
    raise ValueError("no port in the command")


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


def answers(port: int, timeout: float = 10.0) -> bool:
    """True once something answers an RRQ on `port` (any answer: an unknown name is ERROR 1)."""
    deadline = time.monotonic() + timeout
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.settimeout(0.2)
        while time.monotonic() < deadline:
            probe.sendto(build_request("probe-nothing.ld"), (HOST, port))
            with contextlib.suppress(TimeoutError):
                probe.recvfrom(2048)
                return True
    return False


@contextlib.contextmanager
def running(name: str, command: list[str], port: int) -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        if not answers(port):
            err = b""
            if proc.poll() is not None and proc.stderr is not None:
                err = proc.stderr.read()
            raise RuntimeError(f"{name} does not answer on {port}: {err.decode(errors='replace')}")
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()


# -- throughput --------------------------------------------------------------------------------


def atftp_command(port: int, name: str, out: Path, windowsize: int | None) -> list[str]:
    command = ["atftp", "--option", f"blksize {BLKSIZE}"]
    if windowsize is not None:
        command += ["--option", f"windowsize {windowsize}"]
    return [*command, "-g", "-r", name, "-l", str(out), HOST, str(port)]


def fetch_seconds(port: int, name: str, out: Path, windowsize: int | None, digest: str) -> float:
    """One timed atftp download; the file must arrive intact."""
    out.unlink(missing_ok=True)
    started = time.perf_counter()
    proc = subprocess.run(
        atftp_command(port, name, out, windowsize),
        capture_output=True,
        timeout=CLIENT_TIMEOUT,
        check=False,
    )
    seconds = time.perf_counter() - started
    if proc.returncode != 0 or sha256(out) != digest:
        raise RuntimeError(f"atftp from port {port} failed: {proc.stderr.decode(errors='replace')}")
    return seconds


def negotiated(port: int, name: str, out: Path, windowsize: int | None) -> str:
    """The options a server accepted, as atftp --trace prints its OACK."""
    command = atftp_command(port, name, out, windowsize)
    proc = subprocess.run(
        [command[0], "--trace", *command[1:]],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    found = re.search(r"received OACK <([^>]*)>", proc.stdout + proc.stderr)
    if found is None:
        return "no OACK (no option accepted)"
    return re.sub(r"[\x00-\x1f]", "", found.group(1)).strip(" ,")


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def measure_pair(
    report: Report,
    section: str,
    ours: int,
    peer: Peer | None,
    windowsize: int | None,
    scale: Scale,
    work: Path,
    digest: str,
    *,
    goal: bool = True,
    who: str = "ours",
) -> None:
    """Interleaved runs against our server (port `ours`) and a peer; medians and the ratio."""
    if peer is None:
        report.add(section, "peer missing: not measured", "-")
        return
    size = scale.file_mb * 1_000_000
    port = port_of(peer.command)
    with running(peer.name, peer.command, port):
        report.facts[f"{section} options"] = {
            who: negotiated(ours, BIG, work / "trace", windowsize),
            peer.name: negotiated(port, BIG, work / "trace", windowsize),
        }
        print(f"  negotiated: {report.facts[f'{section} options']}", flush=True)
        times: dict[str, list[float]] = {who: [], peer.name: []}
        for _ in range(scale.runs):
            times[who].append(fetch_seconds(ours, BIG, work / "out", windowsize, digest))
            times[peer.name].append(fetch_seconds(port, BIG, work / "out", windowsize, digest))
    rates = {who: [size / 1e6 / s for s in seconds] for who, seconds in times.items()}
    report.facts[f"{section} MB/s"] = rates
    for side, values in rates.items():
        spread = f"{min(values):,.1f}-{max(values):,.1f}"
        median = statistics.median(values)
        report.add(section, f"{side}: median MB/s (min-max)", f"{median:,.1f} ({spread})")
    ratio = statistics.median(rates[who]) / statistics.median(rates[peer.name])
    met = ratio >= 1.0 if goal else None
    report.add(section, f"{who} / {peer.name}", f"x{ratio:.2f}", ">= x1.00" if goal else "", met)


# -- 2,000 at once -----------------------------------------------------------------------------


class Fetch:
    """One lock-step read as a phone makes it: RRQ (blksize, tsize), ACK per block, timer resends.

    A non-blocking socket watched with add_reader, as the server does, so that
    2,000 of them in this process stay cheap.
    """

    def __init__(self, server: Address, name: str, total: float) -> None:
        self.loop = asyncio.get_running_loop()
        self.server = server
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setblocking(False)
        self.sock.bind((HOST, 0))
        self.done: asyncio.Future[bytes] = self.loop.create_future()
        self.request = build_request(name, "octet", (("blksize", str(BLKSIZE)), ("tsize", "0")))
        self.last = self.request
        self.peer: Address | None = None
        self.blksize = 512
        self.block = 0
        self.parts: list[bytes] = []
        self.tries = 0
        self.interval = 1.0
        self.timer: asyncio.TimerHandle | None = None
        self.give_up = self.loop.time() + total
        self.retransmissions = 0

    def start(self) -> None:
        self.loop.add_reader(self.sock.fileno(), self.readable)
        self.send(self.request)

    def close(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
        self.loop.remove_reader(self.sock.fileno())
        self.sock.close()

    def send(self, datagram: bytes) -> None:
        self.last, self.tries, self.interval = datagram, 0, 1.0
        self.transmit()

    def transmit(self) -> None:
        with contextlib.suppress(BlockingIOError):  # lost like on a wire: the timer resends
            self.sock.sendto(self.last, self.peer or self.server)
        if self.timer is not None:
            self.timer.cancel()
        self.timer = self.loop.call_at(
            min(self.loop.time() + self.interval, self.give_up), self.timeout
        )

    def timeout(self) -> None:
        self.timer = None
        if self.done.done():
            return
        if self.loop.time() >= self.give_up or self.tries >= 8:
            self.done.set_exception(TimeoutError(f"no answer after block {self.block}"))
            return
        self.tries += 1
        self.retransmissions += 1
        self.interval = min(self.interval * 2, 8.0)
        self.transmit()

    def readable(self) -> None:
        try:
            data, addr = self.sock.recvfrom(65536)
        except OSError:
            return
        if self.done.done():
            return
        sender = (str(addr[0]), int(addr[1]))
        if self.peer is None:
            self.peer = sender
        elif sender != self.peer:
            return
        try:
            packet = parse_packet(data)
        except TftpError as exc:
            self.done.set_exception(RuntimeError(f"malformed: {exc}"))
            return
        if isinstance(packet, Error):
            self.done.set_exception(RuntimeError(f"ERROR {packet.code} {packet.message}"))
        elif isinstance(packet, OAck) and self.block == 0:
            self.blksize = int(dict(packet.options).get("blksize", "512"))
            self.send(build_ack(0))
        elif isinstance(packet, Data) and packet.block == (self.block + 1) % 0x10000:
            self.block += 1
            self.parts.append(packet.payload)
            self.send(build_ack(packet.block))
            if len(packet.payload) < self.blksize:
                self.done.set_result(b"".join(self.parts))


async def concurrent(port: int, count: int, total: float, expected: bytes) -> dict[str, object]:
    """`count` transfers started at once; every body checked against `expected`."""
    loop = asyncio.get_running_loop()
    fetches = [Fetch((HOST, port), SMALL, total) for _ in range(count)]
    started = loop.time()
    for fetch in fetches:
        fetch.start()
    outcomes = await asyncio.gather(*(f.done for f in fetches), return_exceptions=True)
    seconds = loop.time() - started
    for fetch in fetches:
        fetch.close()
    reasons: Counter[str] = Counter()
    intact = 0
    for outcome in outcomes:
        if isinstance(outcome, bytes) and outcome == expected:
            intact += 1
        else:
            reasons[re.sub(r"\d+", "N", repr(outcome))[:80]] += 1
    return {
        "intact": intact,
        "failed": count - intact,
        "reasons": dict(reasons),
        "seconds": seconds,
        "retransmissions": sum(f.retransmissions for f in fetches),
    }


def measure_concurrent(
    report: Report, server: subprocess.Popen[bytes], port: int, scale: Scale, image: bytes
) -> None:
    section = f"{scale.concurrent:,} at once"
    result = asyncio.run(concurrent(port, scale.concurrent, 300.0, image))
    report.facts["concurrent"] = result
    seconds = float(str(result["seconds"]))
    moved = scale.concurrent * len(image)
    report.add(section, f"transfers of {len(image) // 1024} KiB, intact", f"{result['intact']:,}")
    report.add(section, "failed", f"{result['failed']:,}", "0", result["failed"] == 0)
    if result["reasons"]:
        report.add(section, "failure reasons", str(result["reasons"]))
    report.add(section, "wall time, all done", f"{seconds:,.1f} s")
    report.add(section, "aggregate", f"{moved / 1e6 / seconds:,.1f} MB/s")
    report.add(section, "client retransmissions", f"{result['retransmissions']:,}")
    status = proc_status(server.pid)
    if "VmHWM" in status:
        report.add(section, "our server's peak RSS", f"{status['VmHWM'] / 1024:,.0f} MiB")


# -- the run -----------------------------------------------------------------------------------


def run(scale: Scale, args: argparse.Namespace) -> Report:
    report = Report()
    started = time.perf_counter()
    pyspy = None
    if args.profile is not None:
        pyspy = args.py_spy or shutil.which("py-spy")
        if pyspy is None:
            raise SystemExit("--profile needs py-spy (pip install py-spy)")
        args.profile.mkdir(parents=True, exist_ok=True)
    if shutil.which("atftp") is None:
        raise SystemExit("the atftp client is needed (apt-get install atftp)")
    nofile = raise_nofile()
    report.facts["nofile"] = nofile
    with tempfile.TemporaryDirectory(prefix="bench-tftp-") as tmp:
        work = Path(tmp)
        root = work / "root"
        root.mkdir(mode=0o755)
        work.chmod(0o755)  # the peers drop privileges and chroot into ROOT
        big = root / BIG
        with big.open("wb") as file:
            for _ in range(scale.file_mb):
                file.write(os.urandom(1_000_000))
        image = os.urandom(scale.concurrent_kib * 1024)
        (root / SMALL).write_bytes(image)
        for path in (big, root / SMALL):
            path.chmod(0o644)
        digest = sha256(big)
        store = work / "store"
        for path in (big, root / SMALL):
            publish_file(store, path, filename=path.name)
        port = free_udp_port()
        ours = [
            sys.executable,
            str(Path(__file__).resolve()),
            "--serve",
            str(store),
            "--port",
            str(port),
        ]
        found = peers(root, args)
        report.facts["peers"] = {k: (v.command[0] if v else None) for k, v in found.items()}
        with running("our server", ours, port) as server:
            print(f"\n-- lock-step, blksize {BLKSIZE}: ours vs in.tftpd (tftpd-hpa)", flush=True)
            with profiled(pyspy, server.pid, args.profile, "lockstep"):
                measure_pair(
                    report, "lock-step", port, found["in.tftpd"], None, scale, work, digest
                )
            print("\n-- lock-step floors: bare Python servers vs in.tftpd", flush=True)
            for kind in ("blocking", "asyncio"):
                floor_port = free_udp_port()
                floor = [sys.executable, str(Path(__file__).resolve()), "--floor", kind]
                floor += ["--serve", str(root), "--port", str(floor_port)]
                with running(f"{kind} floor", floor, floor_port):
                    measure_pair(
                        report,
                        f"lock-step floor ({kind})",
                        floor_port,
                        found["in.tftpd"],
                        None,
                        scale,
                        work,
                        digest,
                        goal=False,
                        who=f"{kind} floor",
                    )
            print(f"\n-- windowsize {WINDOWSIZE}, blksize {BLKSIZE}: ours vs atftpd", flush=True)
            with profiled(pyspy, server.pid, args.profile, "window"):
                measure_pair(
                    report,
                    f"windowsize {WINDOWSIZE}",
                    port,
                    found["atftpd"],
                    WINDOWSIZE,
                    scale,
                    work,
                    digest,
                )
            print(f"\n-- {scale.concurrent:,} transfers at once from our server", flush=True)
            with profiled(pyspy, server.pid, args.profile, "concurrent"):
                measure_concurrent(report, server, port, scale, image)
    if args.profile is not None:
        print_profiles(args.profile, report, "our TFTP server")
    report.facts["total_s"] = time.perf_counter() - started
    report.facts["load_avg"] = os.getloadavg()
    return report


def parse_args(argv: Sequence[str] | None) -> tuple[Scale, argparse.Namespace]:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="10 MB x 2 runs, 200 at once")
    parser.add_argument("--file-mb", type=int)
    parser.add_argument("--runs", type=int)
    parser.add_argument("--concurrent", type=int)
    parser.add_argument("--concurrent-kib", type=int)
    parser.add_argument("--in-tftpd", help="tftpd-hpa's in.tftpd (default: on PATH)")
    parser.add_argument(
        "--atftpd", help="atftpd (default: on PATH, else .ci/cache/atftpd or /opt/atftpd)"
    )
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    parser.add_argument("--profile", type=Path, help="record py-spy profiles of our server here")
    parser.add_argument("--py-spy", help="py-spy executable (default: on PATH)")
    parser.add_argument("--serve", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--floor", choices=("blocking", "asyncio"), help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    base = QUICK if args.quick else FULL
    scale = Scale(
        args.file_mb or base.file_mb,
        args.runs or base.runs,
        args.concurrent or base.concurrent,
        args.concurrent_kib or base.concurrent_kib,
    )
    return scale, args


def main(argv: Sequence[str] | None = None) -> int:
    scale, args = parse_args(argv)
    if args.serve is not None and args.floor is not None:
        serve_floor(args.floor, args.serve, args.port)
        return 0
    if args.serve is not None:
        serve(args.serve, args.port)
        return 0
    when = begin("bench_tftp", scale)
    report = run(scale, args)
    finish(report, when, scale, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
