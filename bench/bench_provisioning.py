"""The phone-facing provisioning service under load, side by side with nginx.

In one run, against `relay up` (a subprocess; one process) and nginx
(`worker_processes 1`, same certificate and key, same TLS policy, basic auth on
every request: one port with an `apr1` htpasswd, as the issue asks, one with
`{SSHA}`, the same per-request work as our cached check) serving the very same
bytes as static files, plus a bare aiohttp HTTPS app (the one-process floor):

1. generated per-device files (`<mac>-profile.cfg`) over HTTPS with wrk and a
   Lua script rotating through every device's path: (a) keep-alive, (b) a new
   TLS connection per request (`Connection: close`; the TCP connections
   opened are counted to prove wrk really reconnects); `relay up` pinned to one
   CPU like the peers, and unpinned as it runs by default;
2. a firmware image (uploaded with `POST /api/v1/images`, streamed from a
   file) downloaded with curl: 3 runs one at a time, then 4 at once;
3. the phone simulator: `relay sim` booting N phones at once (each from its own
   127.x source address) against `relay up`: time until all are provisioned,
   errors, peak RSS of both processes, listen-queue overflows.

It prints every number and the ratios ours/nginx against the issue's goals.
This is a benchmark, not a test: it asserts nothing about timings. It re-runs
itself in a private network namespace (exact TCP counters; --no-netns) and pins
servers to one CPU, load generators to the others (--no-pin).

    .venv/bin/python bench/bench_provisioning.py            # 1,000 devices, 200 MB, 2,000 phones
    .venv/bin/python bench/bench_provisioning.py --quick    # 100 / 20 MB / 200 phones (~40 s)
    .venv/bin/python bench/bench_provisioning.py --profile /tmp/prof   # + py-spy of relay up

Needs `nginx`, `wrk`, `curl` and `openssl` on PATH (Debian: apt-get install
nginx wrk curl openssl). Loopback only; every server it starts is stopped at
the end, errors included; every load is bounded in count and time.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import collections
import contextlib
import datetime as dt
import hashlib
import json
import os
import random
import re
import resource
import select
import shlex
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import aiohttp
from report import Report, finish, machine, mib

from relay.cloud.controlplane import ControlPlane
from relay.cloud.rules.standard_profiles import NEW_TENANT_GLOBAL
from relay.secretfile import write_secret

HOST = "127.0.0.1"
ACTOR = "bench"
WANT_NOFILE = 65_536
PYSPY_RATE = 250
# VVX models (phones.md part numbers); each gets its own model bindings.
DEVICE_MODELS = ("VVX250", "VVX350", "VVX450", "VVX500", "VVX600", "VVX410", "VVX310")
PARAM_TEMPLATES = (
    "reg.{n}.address",
    "reg.{n}.label",
    "reg.{n}.displayName",
    "reg.{n}.auth.userId",
    "reg.{n}.server.1.address",
    "reg.{n}.server.1.port",
    "reg.{n}.lineKeys",
    "voIpProt.server.{n}.address",
    "voIpProt.server.{n}.port",
    "attendant.resourceList.{n}.address",
    "attendant.resourceList.{n}.label",
    "efk.efklist.{n}.action.string",
    "efk.efklist.{n}.label",
    "softkey.{n}.label",
    "softkey.{n}.action",
    "key.{n}.function.prim",
    "lineKey.{n}.category",
    "dialplan.routing.server.{n}.address",
    "msg.mwi.{n}.subscribe",
)
PARAM_FIXED = (
    "tcpIpApp.sntp.address",
    "tcpIpApp.sntp.gmtOffset",
    "lcl.datetime.date.format",
    "lcl.ml.lang",
    "dialplan.digitmap",
    "up.backlight.idleIntensity",
    "up.screenSaver.enabled",
    "voice.codecPref.G711_Mu",
    "voice.codecPref.G722",
    "voice.codecPref.Opus",
    "bg.color.selection",
    "video.enable",
    "httpd.cfg.enabled",
)
PURPOSES = ("Lines", "Dialplan", "Features", "Branding", "Codecs", "Region")


@dataclass(frozen=True, slots=True)
class Scale:
    devices: int
    profiles: int
    groups: int
    image_mb: int
    phones: int
    wrk_seconds: float
    wrk_warmup_seconds: float
    wrk_connections: int
    wrk_repeats: int
    curl_runs: int
    parallel_downloads: int
    sim_timeout: float


FULL = Scale(1_000, 40, 12, 200, 2_000, 10.0, 1.0, 32, 2, 3, 4, 600.0)
QUICK = Scale(100, 12, 4, 20, 200, 2.0, 0.5, 16, 1, 3, 4, 120.0)


# -- report ---------------------------------------------------------------------


def ms(us: float) -> str:
    return f"{us / 1000:,.2f} ms"


# -- processes ------------------------------------------------------------------


def raise_nofile() -> tuple[int, int]:
    """Raise the open-file limit (children inherit it): 2,000 phones are 2,000+ sockets
    in the simulator and as many in the server."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    with contextlib.suppress(ValueError, OSError):
        if hard < WANT_NOFILE:
            resource.setrlimit(resource.RLIMIT_NOFILE, (WANT_NOFILE, WANT_NOFILE))  # root only
            return WANT_NOFILE, WANT_NOFILE
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        return hard, hard
    return soft, hard


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS, VmHWM (peak) and Threads of a process, from /proc (KiB for sizes)."""
    out: dict[str, int] = {}
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM", "Threads"):
                out[key] = int(rest.split()[0])
    return out


def reset_peak_rss(pid: int) -> bool:
    """`echo 5 > /proc/PID/clear_refs` resets VmHWM (Linux 4.0+), so a later peak is
    the peak of what happened in between."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        return False
    return True


TICK = os.sysconf("SC_CLK_TCK")


@dataclass(slots=True)
class CpuPlan:
    """Which CPUs servers and load generators run on. Pinned (the default with 2+ CPUs):
    every server on the first CPU (one core each, like nginx's one worker), every load
    generator on the others, so they never fight for a core."""

    server: set[int] | None = None
    client: set[int] | None = None

    def run_on(self, role: str, cmd: Sequence[str]) -> list[str]:
        cpus = self.server if role == "server" else self.client
        if not cpus:
            return list(cmd)
        return ["taskset", "-c", ",".join(str(c) for c in sorted(cpus)), *cmd]

    def describe(self) -> str:
        if not self.server or not self.client:
            return "not pinned (the scheduler places servers and load generators)"
        return f"servers on CPU {sorted(self.server)}, load generators on CPU {sorted(self.client)}"


CPUS = CpuPlan()


def plan_cpus(enabled: bool) -> None:
    allowed = sorted(os.sched_getaffinity(0))
    if enabled and len(allowed) >= 2 and shutil.which("taskset"):
        CPUS.server, CPUS.client = {allowed[0]}, set(allowed[1:])


def set_affinity(pid: int, cpus: set[int]) -> None:
    """Move every thread of a running process (sched_setaffinity is per thread)."""
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            with contextlib.suppress(OSError):
                os.sched_setaffinity(int(task.name), cpus)


def cpu_busy(cpus: set[int] | None) -> float:
    """Busy seconds so far of these CPUs (all when None), from /proc/stat."""
    total = 0
    for line in Path("/proc/stat").read_text().splitlines():
        name = line.split(" ", 1)[0]
        if not name.startswith("cpu") or name == "cpu":
            continue
        if cpus is not None and int(name[3:]) not in cpus:
            continue
        values = [int(v) for v in line.split()[1:9]]
        total += sum(values) - values[3] - values[4]
    return total / TICK


NETNS_ENV = "BENCH_PROVISIONING_NETNS"
# "" in the benchmark's own network namespace (counters exact), else a warning.
NET_SCOPE = [" (whole machine: others' traffic included)"]


def in_private_netns(argv: Sequence[str]) -> None:
    """Re-run this script in a new network namespace with only `lo` (as root, with
    util-linux unshare and iproute2): the TCP counters then count our connections only,
    and other programs' loopback traffic stays out. All traffic is still loopback."""
    if os.environ.get(NETNS_ENV) == "1":
        NET_SCOPE[0] = ""
        return
    if os.geteuid() != 0 or not (shutil.which("unshare") and shutil.which("ip")):
        print("not root, or no unshare/ip: running in the machine's network namespace")
        return
    env = {**os.environ, NETNS_ENV: "1"}
    script = 'ip link set lo up && exec "$0" "$@"'
    sys.stdout.flush()
    me = str(Path(__file__).resolve())
    os.execvpe(  # noqa: S606 (no shell: the argv list goes to unshare as is)
        "unshare", ["unshare", "--net", "--", "sh", "-c", script, sys.executable, me, *argv], env
    )


def cpu_seconds(pids: Sequence[int]) -> float:
    """utime + stime of the processes (all their threads), from /proc/PID/stat."""
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
    return total / TICK


def children_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == pid:
                found.append(int(entry.name))
    return found


def net_counters() -> dict[str, int]:
    """TCP connections opened and listen-queue overflows, counted for the whole network
    namespace: exact in the benchmark's own namespace (see in_private_netns)."""
    out: dict[str, int] = {}
    for name, keys in (
        ("/proc/net/snmp", ("Tcp:ActiveOpens",)),
        ("/proc/net/netstat", ("TcpExt:ListenOverflows", "TcpExt:ListenDrops")),
    ):
        with contextlib.suppress(OSError):
            lines = Path(name).read_text().splitlines()
            for head, values in zip(lines[::2], lines[1::2], strict=False):
                prefix = head.split(":")[0]
                for k, v in zip(head.split()[1:], values.split()[1:], strict=False):
                    if f"{prefix}:{k}" in keys:
                        out[f"{prefix}:{k}"] = int(v)
    return out


def delta(after: dict[str, int], before: dict[str, int]) -> dict[str, int]:
    return {k: after.get(k, 0) - before.get(k, 0) for k in after}


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def wait_port(port: int, proc: subprocess.Popen[bytes], name: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(OSError), socket.create_connection((HOST, port), timeout=1):
            return
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{name} is not listening on {port} (exit {proc.returncode})")
        time.sleep(0.05)


def kill_if_running(proc: subprocess.Popen[bytes]) -> None:
    """A load generator still running after an error is killed (not left behind)."""
    if proc.returncode is None and proc.poll() is None:
        proc.kill()
        proc.wait()


def stop(proc: subprocess.Popen[bytes], name: str, sig: int = signal.SIGTERM) -> None:
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    print(f"  ({name} stopped, exit code {proc.returncode})", flush=True)


@contextlib.contextmanager
def relay_up(
    data_dir: Path, workdir: Path, relay: Sequence[str]
) -> Iterator[tuple[subprocess.Popen[bytes], dict[str, Any]]]:
    """`relay up --json --free-ports` until its ready line; SIGTERM after. `relay` is the
    command that runs the relay CLI (the venv's `relay`, or a what-if wrapper)."""
    out_path, err_path = workdir / "relay-up.out", workdir / "relay-up.err"
    cmd = CPUS.run_on(
        "server", [*relay, "up", "--data-dir", str(data_dir), "--json", "--free-ports"]
    )
    with out_path.open("wb") as out, err_path.open("wb") as err:
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, cwd=workdir)
    try:
        deadline = time.monotonic() + 60
        ready = re.compile(r'^\{.*"event": "ready".*\}$', re.MULTILINE)
        while (found := ready.search(out_path.read_text(errors="replace"))) is None:
            if proc.poll() is not None or time.monotonic() > deadline:
                tail = err_path.read_text(errors="replace")[-2000:]
                raise RuntimeError(
                    f"relay up did not become ready (exit {proc.returncode}):\n{tail}"
                )
            time.sleep(0.05)
        yield proc, json.loads(found.group(0))
    finally:
        stop(proc, "relay up")


READY_TIMEOUT = 60.0


@contextlib.contextmanager
def relay_process(
    argv: Sequence[str], workdir: Path, label: str, err_name: str = "relay-up.err"
) -> Iterator[tuple[subprocess.Popen[bytes], dict[str, Any]]]:
    """A `relay up --json` command (without the caller's RELAY_* settings) until its
    JSON ready line, stderr in WORKDIR/`err_name`; stopped (SIGTERM) after."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RELAY_")}
    err_path = workdir / err_name
    with err_path.open("wb") as err:
        proc = subprocess.Popen(
            list(argv),
            stdout=subprocess.PIPE,
            stderr=err,
            stdin=subprocess.DEVNULL,
            cwd=workdir,
            env=env,
        )
    try:
        yield proc, _ready_line(proc, err_path)
    finally:
        stop(proc, label)
        if proc.stdout is not None:
            proc.stdout.close()


def _ready_line(proc: subprocess.Popen[bytes], err_path: Path) -> dict[str, Any]:
    """The JSON ready line, read with a deadline."""
    assert proc.stdout is not None
    deadline = time.monotonic() + READY_TIMEOUT
    out = b""
    while b"\n" not in out:
        left = deadline - time.monotonic()
        readable = select.select([proc.stdout], [], [], max(left, 0))[0] if left > 0 else []
        chunk = os.read(proc.stdout.fileno(), 65536) if readable else b""
        if not chunk:
            tail = err_path.read_text(errors="replace")[-2000:]
            raise RuntimeError(f"relay up did not become ready (exit {proc.poll()}):\n{tail}")
        out += chunk
    facts: dict[str, Any] = json.loads(out.partition(b"\n")[0])
    return facts


def relay_cli() -> list[str]:
    script = Path(sys.executable).with_name("relay")
    return [str(script)] if script.exists() else [sys.executable, "-m", "relay.cli"]


NGINX_SERVER = """
    server {{
        listen {host}:{port} ssl;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_ciphers ECDHE+AESGCM:ECDHE+CHACHA20;
        root {root};
        auth_basic "provisioning";
        auth_basic_user_file {htpasswd};
        location / {{ try_files $uri =404; }}
    }}
"""
NGINX_CONF = """\
worker_processes 1;
daemon off;
master_process on;
user root;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
worker_rlimit_nofile {nofile};
events {{ worker_connections 16384; }}
http {{
    access_log {dir}/access.log;
    default_type application/octet-stream;
    types {{ application/xml cfg; }}
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    keepalive_timeout 75s;
    keepalive_requests 1000000;
    client_body_temp_path {dir}/tmp/body;
    proxy_temp_path {dir}/tmp/proxy;
    fastcgi_temp_path {dir}/tmp/fastcgi;
    uwsgi_temp_path {dir}/tmp/uwsgi;
    scgi_temp_path {dir}/tmp/scgi;
{servers}}}
"""


def htpasswd_lines(user: str, password: str) -> dict[str, str]:
    """Two password files for the same account: `apr1` (`openssl passwd -apr1`: 1,000 MD5
    rounds on every request, nginx caches nothing) and `{SSHA}` (one salted SHA-1 per
    request: the same per-request work as our service's cached check, one SHA-256)."""
    apr1 = (
        subprocess.run(
            ["openssl", "passwd", "-apr1", "-stdin"],
            input=password.encode(),
            capture_output=True,
            check=True,
            timeout=30,
        )
        .stdout.decode()
        .strip()
    )
    salt = os.urandom(8)
    digest = hashlib.sha1(password.encode() + salt).digest()  # noqa: S324 ({SSHA} is SHA-1)
    ssha = base64.b64encode(digest + salt).decode()
    return {"apr1": f"{user}:{apr1}\n", "ssha": f"{user}:{{SSHA}}{ssha}\n"}


@contextlib.contextmanager
def nginx(
    workdir: Path, root: Path, tls: Path, user: str, password: str
) -> Iterator[tuple[subprocess.Popen[bytes], dict[str, int]]]:
    """One nginx, one worker process, the relay's certificate, key and TLS policy, an
    access log like our one line per file, and basic auth: one port per password file
    (see htpasswd_lines). SIGTERM after."""
    conf_dir = workdir / "nginx"
    (conf_dir / "tmp").mkdir(parents=True)
    ports: dict[str, int] = {}
    servers = []
    for scheme, line in htpasswd_lines(user, password).items():
        (conf_dir / f"htpasswd-{scheme}").write_text(line)
        ports[scheme] = free_port()
        servers.append(
            NGINX_SERVER.format(
                host=HOST,
                port=ports[scheme],
                cert=tls / "server.pem",
                key=tls / "server.key",
                root=root,
                htpasswd=conf_dir / f"htpasswd-{scheme}",
            )
        )
    conf = conf_dir / "nginx.conf"
    conf.write_text(NGINX_CONF.format(dir=conf_dir, nofile=WANT_NOFILE, servers="".join(servers)))
    err = (conf_dir / "stderr.log").open("wb")
    proc = subprocess.Popen(
        CPUS.run_on(
            "server",
            ["nginx", "-p", str(conf_dir), "-c", str(conf), "-e", str(conf_dir / "error.log")],
        ),
        stdout=err,
        stderr=subprocess.STDOUT,
    )
    err.close()
    try:
        for port in ports.values():
            wait_port(port, proc, "nginx")
        yield proc, ports
    finally:
        stop(proc, "nginx")


AIOHTTP_FLOOR = """
import hmac, os, ssl, sys
from pathlib import Path
from aiohttp import web
from certs.tls import MINIMUM_VERSION, SERVER_CIPHERS

root, cert, key, port = sys.argv[1:5]
files = {f"/{p.name}": p.read_bytes() for p in Path(root).glob("*-profile.cfg")}
expected = os.environ["BENCH_AUTH"].encode()

async def handler(request):
    given = request.headers.get("Authorization", "").encode()
    if not hmac.compare_digest(given, expected):
        return web.Response(status=401, headers={"WWW-Authenticate": "Basic"})
    body = files.get(request.path)
    if body is None:
        return web.Response(status=404)
    return web.Response(body=body, content_type="application/xml")

context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.minimum_version = MINIMUM_VERSION
context.set_ciphers(SERVER_CIPHERS)
context.options |= ssl.OP_NO_COMPRESSION
context.load_cert_chain(cert, key)
app = web.Application()
app.router.add_get("/{name}", handler)
web.run_app(app, host="127.0.0.1", port=int(port), ssl_context=context, access_log=None,
            print=None)
"""


@contextlib.contextmanager
def aiohttp_floor(
    workdir: Path, root: Path, tls: Path, auth: str
) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """A bare aiohttp HTTPS app, same TLS policy, one process: a header compare and a dict
    lookup per request, no logging. The floor for any one-process asyncio service."""
    port = free_port()
    err = (workdir / "aiohttp-floor.log").open("wb")
    proc = subprocess.Popen(
        CPUS.run_on(
            "server",
            [
                sys.executable,
                "-c",
                AIOHTTP_FLOOR,
                str(root),
                str(tls / "server.pem"),
                str(tls / "server.key"),
                str(port),
            ],
        ),
        stdout=err,
        stderr=subprocess.STDOUT,
        env={**os.environ, "BENCH_AUTH": auth},
    )
    err.close()
    try:
        wait_port(port, proc, "aiohttp floor")
        yield proc, port
    finally:
        stop(proc, "aiohttp floor")


# -- the population ----------------------------------------------------------------


def parameter_value(rng: random.Random, name: str) -> str:
    if name.endswith(("address", "serverName")):
        return f"sip{rng.randint(1, 99)}.voice.example.net"
    if name.endswith(("label", "displayName", "string")):
        return rng.choice(("Reception", "Lobby ${mac_address}", "Ops desk", "Line $FK1$"))
    if name.endswith(("enabled", "enable", "subscribe")):
        return rng.choice(("0", "1"))
    return str(rng.randint(0, 9999))


def mac_of(i: int) -> str:
    return f"0004f2{0xB00000 + i:06x}"


def populate(data_dir: Path, scale: Scale, rng: random.Random) -> tuple[list[str], dict[str, Any]]:
    """Groups, profiles, devices and bindings through the control-plane services
    (in-process, before `relay up` opens the same data). One site owns 127.0.0.0/8, so
    phones on loopback land in a real site with its own bindings."""
    started = time.perf_counter()
    plane = ControlPlane(data_dir / "cloud")
    try:
        token = plane.bootstrap()
        assert token is not None, "the data directory must be new"
        write_secret(data_dir / "admin-token", token)
        sites: list[str] = []
        with contextlib.suppress(Exception):
            plane.sites.create(
                {
                    "name": "lab-loopback",
                    "description": "phones on loopback",
                    "public_subnets": [{"cidr": "127.0.0.0/8", "private_subnets": []}],
                },
                ACTOR,
            )
            sites.append("lab-loopback")
        groups = [f"floor-{i:02d}" for i in range(scale.groups)]
        for name in groups:
            plane.groups.create({"name": name, "description": "bench group"}, ACTOR)
        pool = [t.format(n=n) for t in PARAM_TEMPLATES for n in range(1, 13)] + list(PARAM_FIXED)
        profiles = [f"{PURPOSES[i % len(PURPOSES)]}-{i:03d}" for i in range(scale.profiles)]
        for name in profiles:
            params = {p: parameter_value(rng, p) for p in rng.sample(pool, rng.randint(15, 40))}
            plane.profiles.create({"name": name, "parameters": params}, ACTOR)
        macs = [mac_of(i) for i in range(scale.devices)]
        for i, mac in enumerate(macs):
            plane.devices.create(
                {
                    "mac": mac,
                    "type": "VVX",
                    "model": rng.choice(DEVICE_MODELS),
                    "name": f"desk-{i:05d}",
                    "groups": rng.sample(groups, rng.randint(1, 2)),
                },
                ACTOR,
            )
        deploy = plane.deployment
        deploy.set("global", "-", [*NEW_TENANT_GLOBAL, *rng.sample(profiles, 2)], ACTOR)
        for site in sites:
            deploy.set("site", site, rng.sample(profiles, 2), ACTOR)
        for model in DEVICE_MODELS:
            deploy.set("model", model, rng.sample(profiles, rng.randint(1, 2)), ACTOR)
        for group in groups:
            deploy.set("group", group, rng.sample(profiles, rng.randint(1, 2)), ACTOR)
        for mac in rng.sample(macs, max(1, len(macs) // 10)):
            deploy.set("device", mac, rng.sample(profiles, 1), ACTOR)
    finally:
        plane.close()
    facts = {
        "devices": len(macs),
        "profiles": len(profiles),
        "groups": len(groups),
        "sites": sites,
        "seconds": time.perf_counter() - started,
    }
    return macs, facts


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


async def warm(
    base: str, macs: Sequence[str], auth: str, cafile: str, into: Path
) -> tuple[float, list[int], int]:
    """Fetch every `<mac>-profile.cfg` once (builds and caches it), write the bytes to the
    nginx root; then fetch a sample again to check the cache serves the same bytes."""
    tls = ssl.create_default_context(cafile=cafile)
    headers = {"Authorization": auth}
    sizes: list[int] = []
    async with aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(ssl=tls, limit=8),
        headers=headers,
        timeout=aiohttp.ClientTimeout(total=60),
    ) as session:

        async def get(mac: str) -> bytes:
            async with session.get(f"{base}{mac}-profile.cfg") as response:
                body = await response.read()
                if response.status != 200:
                    raise RuntimeError(f"GET {mac}-profile.cfg: {response.status} {body[:200]!r}")
                return body

        gate = asyncio.Semaphore(8)

        async def first(mac: str) -> None:
            async with gate:
                body = await get(mac)
            (into / f"{mac}-profile.cfg").write_bytes(body)
            sizes.append(len(body))

        started = time.perf_counter()
        await asyncio.gather(*(first(m) for m in macs))
        cold = time.perf_counter() - started
        differ = 0
        for mac in macs[:: max(1, len(macs) // 20)]:
            if await get(mac) != (into / f"{mac}-profile.cfg").read_bytes():
                differ += 1
    return cold, sizes, differ


async def upload_image(api: str, token: str, image: Path) -> tuple[dict[str, Any], float]:
    """POST /api/v1/images?model=VVX&version=6.4.3&filename=sip.ld, the body streamed from
    the file (aiohttp sends an open file in chunks)."""
    started = time.perf_counter()
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=600)) as session:
        with image.open("rb") as fh:
            async with session.post(
                f"{api}/images",
                params={"model": "VVX", "version": "6.4.3", "filename": "sip.ld"},
                data=fh,
                headers={
                    "Authorization": f"Bearer {token}",
                    "Content-Type": "application/octet-stream",
                },
            ) as response:
                body = await response.json()
                if response.status != 201:
                    raise RuntimeError(f"image upload: {response.status} {body}")
    return body, time.perf_counter() - started


def write_image(path: Path, size: int) -> str:
    """Random bytes (incompressible), 1 MiB at a time; returns the sha256."""
    digest = hashlib.sha256()
    with path.open("wb") as fh:
        left = size
        while left > 0:
            chunk = os.urandom(min(left, 2**20))
            digest.update(chunk)
            fh.write(chunk)
            left -= len(chunk)
    return digest.hexdigest()


# -- wrk ----------------------------------------------------------------------------------

WRK_LUA = """\
wrk.headers["Authorization"] = "{auth}"
local paths = {{{paths}}}
local n = #paths
local i = 0
function request()
  i = i % n + 1
  return wrk.format(nil, paths[i])
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCH {{"requests": %d, "duration_us": %d, "bytes": %d, "connect": %d, "read": %d, ' ..
    '"write": %d, "status": %d, "timeout": %d, "p50": %d, "p90": %d, "p99": %d, ' ..
    '"max": %d, "mean": %.1f}}\\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write,
    e.status, e.timeout, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, latency.mean))
end
"""


@dataclass(frozen=True, slots=True)
class WrkResult:
    requests: int
    seconds: float
    rps: float
    bytes_per_request: float
    errors: dict[str, int]
    p50_us: float
    p99_us: float
    server_cpu_s: float
    client_cpu_s: float
    others_cpu_s: float
    connections_opened: int
    listen_overflows: int

    @property
    def server_cpu_us_per_request(self) -> float:
        return self.server_cpu_s / max(1, self.requests) * 1e6

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())


def wrk_script(workdir: Path, macs: Sequence[str], auth: str) -> Path:
    script = workdir / "rotate.lua"
    paths = ", ".join(f'"/{m}-profile.cfg"' for m in macs)
    script.write_text(WRK_LUA.format(auth=auth, paths=paths))
    return script


def busy_cpu_seconds() -> float:
    """CPU time all processes used so far (all cores), from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    return (sum(values) - values[3] - values[4]) / TICK


def run_wrk(
    url: str,
    script: Path,
    seconds: float,
    connections: int,
    server_pids: Callable[[], Sequence[int]],
    close: bool,
) -> WrkResult:
    """One wrk thread (the other core is the server's), `connections` connections."""
    cmd = [
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        "--timeout",
        "10s",
        "-s",
        str(script),
    ]
    if close:
        cmd += ["-H", "Connection: close"]
    cmd.append(url)
    pids = server_pids()
    cpu_before, busy_before, net_before = cpu_seconds(pids), busy_cpu_seconds(), net_counters()
    proc = subprocess.Popen(
        CPUS.run_on("client", cmd), stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    timer = threading.Timer(seconds + 60, proc.kill)
    timer.start()
    try:
        out = proc.stdout.read().decode(errors="replace") if proc.stdout else ""
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    finally:
        timer.cancel()
        kill_if_running(proc)
    server_cpu = cpu_seconds(pids) - cpu_before
    client_cpu = usage.ru_utime + usage.ru_stime
    others = busy_cpu_seconds() - busy_before - server_cpu - client_cpu
    net = delta(net_counters(), net_before)
    found = re.search(r"^BENCH (\{.*\})$", out, re.MULTILINE)
    if found is None:
        raise RuntimeError(f"wrk failed (exit {proc.returncode}):\n{out[-2000:]}")
    data = json.loads(found.group(1))
    secs = data["duration_us"] / 1e6
    n = data["requests"]
    return WrkResult(
        requests=n,
        seconds=secs,
        rps=n / secs,
        bytes_per_request=data["bytes"] / max(1, n),
        errors={k: data[k] for k in ("connect", "read", "write", "status", "timeout") if data[k]},
        p50_us=data["p50"],
        p99_us=data["p99"],
        server_cpu_s=server_cpu,
        client_cpu_s=client_cpu,
        others_cpu_s=max(0.0, others),
        connections_opened=net.get("Tcp:ActiveOpens", 0),
        listen_overflows=net.get("TcpExt:ListenOverflows", 0),
    )


# -- curl ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Download:
    status: int
    size: int
    speed: float  # bytes/s, curl's %{speed_download}
    seconds: float


CURL_FORMAT = "%{http_code} %{size_download} %{speed_download} %{time_total}"


def curl_cmd(url: str, cafile: str, user: str, password: str) -> list[str]:
    return [
        "curl",
        "-sS",
        "--cacert",
        cafile,
        "-u",
        f"{user}:{password}",
        "-o",
        "/dev/null",
        "--max-time",
        "300",
        "-w",
        CURL_FORMAT,
        url,
    ]


def curl_parallel(cmd: list[str], count: int) -> tuple[list[Download], float]:
    """`count` curl downloads started at once; returns each and the wall time of all."""
    started = time.perf_counter()
    procs = [
        subprocess.Popen(CPUS.run_on("client", cmd), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for _ in range(count)
    ]
    results: list[Download] = []
    try:
        for proc in procs:
            out, err = proc.communicate(timeout=330)
            fields = out.decode().split()
            if proc.returncode != 0 or len(fields) != 4:
                raise RuntimeError(f"curl exit {proc.returncode}: {err.decode()[-500:]}")
            results.append(
                Download(int(fields[0]), int(fields[1]), float(fields[2]), float(fields[3]))
            )
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return results, time.perf_counter() - started


# -- py-spy ---------------------------------------------------------------------------------


@contextlib.contextmanager
def profiled(pyspy: str | None, pid: int, out_dir: Path | None, name: str) -> Iterator[Path | None]:
    """py-spy record of `pid` while the body runs: raw collapsed stacks, sampled without
    stopping the process, only the thread holding the GIL (where Python spends CPU)."""
    if pyspy is None or out_dir is None:
        yield None
        return
    out = out_dir / f"{name}.txt"
    proc = subprocess.Popen(
        [
            pyspy,
            "record",
            "--gil",
            "--nonblocking",
            "--rate",
            str(PYSPY_RATE),
            "--format",
            "raw",
            "-o",
            str(out),
            "-p",
            str(pid),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(0.5)
    started = time.perf_counter()
    try:
        yield out
    finally:
        out.with_suffix(".seconds").write_text(f"{time.perf_counter() - started:.3f}")
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def gil_share(raw: Path) -> float | None:
    """Share of the profiled time some thread held the GIL (samples / rate x seconds)."""
    seconds = raw.with_suffix(".seconds")
    if not raw.exists() or not seconds.exists():
        return None
    samples = sum(
        int(line.rpartition(" ")[2])
        for line in raw.read_text(errors="replace").splitlines()
        if line.rpartition(" ")[2].isdigit()
    )
    return samples / (PYSPY_RATE * float(seconds.read_text()))


def hot_spots(raw: Path, top: int = 12) -> list[tuple[str, float, float]]:
    """(frame, self %, inclusive %) of the busiest frames in a py-spy raw profile."""
    if not raw.exists():
        return []
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [re.sub(r":\d+\)$", ")", f) for f in stack.split(";")]
        total += count
        own[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count
    if total == 0:
        return []
    names = [name for name, _ in own.most_common(top)]
    return [(n, 100 * own[n] / total, 100 * inclusive[n] / total) for n in names]


# -- the measurements ------------------------------------------------------------------------


def ratio_row(
    report: Report, section: str, what: str, ours: float, theirs: float, goal: float
) -> None:
    ratio = ours / theirs if theirs else 0.0
    report.add(section, what, f"x{ratio:.2f}", f">= {goal:.1f}x", ratio >= goal)


@dataclass(frozen=True, slots=True)
class Target:
    url: str
    pids: Callable[[], list[int]]  # the server's processes
    affinity: set[int] | None = None  # set on every server thread before each run


def prepare(target: Target) -> None:
    if target.affinity:
        for pid in target.pids():
            set_affinity(pid, target.affinity)


def measure_files(
    report: Report,
    scale: Scale,
    script: Path,
    targets: dict[str, Target],
    profile: Callable[[str], contextlib.AbstractContextManager[Path | None]],
) -> None:
    """wrk against each target in turn, `wrk_repeats` rounds (ours, nginx, ours, nginx...);
    the best round of each counts (the machine is shared: others' CPU is shown)."""
    for close, section, label in (
        (False, "files keep-alive", "keep-alive"),
        (True, "files new-conn", "new TLS connection per request"),
    ):
        print(
            f"\n-- <mac>-profile.cfg over HTTPS, {label}: wrk -t1 -c{scale.wrk_connections} "
            f"-d{scale.wrk_seconds:g}s, best of {scale.wrk_repeats}"
        )
        runs: dict[str, list[WrkResult]] = {name: [] for name in targets}
        for t in targets.values():
            prepare(t)
            run_wrk(t.url, script, scale.wrk_warmup_seconds, scale.wrk_connections, t.pids, close)
        for round_ in range(scale.wrk_repeats):
            for name, t in targets.items():
                prepare(t)
                tag = f"files-{'close' if close else 'keepalive'}-{round_}"
                with profile(tag) if name == "relay up" else contextlib.nullcontext():
                    runs[name].append(
                        run_wrk(
                            t.url, script, scale.wrk_seconds, scale.wrk_connections, t.pids, close
                        )
                    )
        best = {name: max(rs, key=lambda r: r.rps) for name, rs in runs.items()}
        for name, r in best.items():
            all_rps = " / ".join(f"{x.rps:,.0f}" for x in runs[name])
            report.add(section, f"{name}: req/s (rounds: {all_rps})", f"{r.rps:,.0f}")
            report.add(section, f"{name}: latency p50 / p99", f"{ms(r.p50_us)} / {ms(r.p99_us)}")
            report.add(
                section,
                f"{name}: CPU per request; server / wrk / others (cores)",
                f"{r.server_cpu_us_per_request:,.0f} µs; {r.server_cpu_s / r.seconds:.2f} / "
                f"{r.client_cpu_s / r.seconds:.2f} / {r.others_cpu_s / r.seconds:.2f}",
            )
            errors = f"{r.error_count}" + (f" {r.errors}" if r.errors else "")
            report.add(
                section,
                f"{name}: errors / bytes per response",
                f"{errors} / {r.bytes_per_request:,.0f} B",
                "0 errors",
                r.error_count == 0,
            )
            opened = r.connections_opened
            report.add(
                section,
                f"{name}: TCP connections opened per request{NET_SCOPE[0]}",
                f"{opened / max(1, r.requests):.3f} ({opened:,} / {r.requests:,})",
            )
        for our_name in [n for n in best if n.startswith("relay up")]:
            ours = best[our_name]
            for name, theirs in best.items():
                if name.startswith("relay up"):
                    continue
                what = f"ratio {our_name} / {name}, req/s"
                if name.startswith("nginx"):
                    ratio_row(report, section, what, ours.rps, theirs.rps, 0.5)
                else:
                    report.add(section, what, f"x{ours.rps / theirs.rps:.2f}")
                if our_name == "relay up":
                    cpu_ratio = ours.server_cpu_us_per_request / max(
                        1e-9, theirs.server_cpu_us_per_request
                    )
                    report.add(
                        section, f"ratio relay up / {name}, CPU per request", f"x{cpu_ratio:.1f}"
                    )
        report.facts[section] = {
            name: [
                {**asdict(r), "server_cpu_us_per_request": r.server_cpu_us_per_request} for r in rs
            ]
            for name, rs in runs.items()
        }


def measure_firmware(
    report: Report,
    scale: Scale,
    size: int,
    targets: dict[str, Target],
    cafile: str,
    user: str,
    password: str,
    profile: Callable[[str], contextlib.AbstractContextManager[Path | None]],
) -> None:
    print(f"\n-- firmware image {mib(size)} over HTTPS with curl")
    sequential: dict[str, list[Download]] = {}
    parallel: dict[str, tuple[list[Download], float]] = {}
    cpu: dict[str, float] = {}
    client: dict[str, tuple[float, float]] = {}
    for name, t in targets.items():
        prepare(t)
        cmd = curl_cmd(t.url, cafile, user, password)
        before, busy_before = cpu_seconds(t.pids()), cpu_busy(CPUS.client)
        runs: list[Download] = []
        with profile("firmware") if name == "relay up" else contextlib.nullcontext():
            started = time.perf_counter()
            for _ in range(scale.curl_runs):
                runs.extend(curl_parallel(cmd, 1)[0])
            one = (cpu_busy(CPUS.client) - busy_before) / (time.perf_counter() - started)
            cpu[name] = (cpu_seconds(t.pids()) - before) / (scale.curl_runs * size / 1e9)
            busy_before = cpu_busy(CPUS.client)
            parallel[name] = curl_parallel(cmd, scale.parallel_downloads)
            many = (cpu_busy(CPUS.client) - busy_before) / parallel[name][1]
            client[name] = (one, many)
        sequential[name] = runs
        bad = [d for d in [*runs, *parallel[name][0]] if d.status != 200 or d.size != size]
        if bad:
            raise RuntimeError(f"{name}: firmware download went wrong: {bad[:3]}")
    medians = {n: statistics.median(d.speed for d in runs) for n, runs in sequential.items()}
    aggregate = {n: scale.parallel_downloads * size / wall for n, (_, wall) in parallel.items()}
    for name, runs in sequential.items():
        speeds = ", ".join(f"{d.speed / 2**20:,.0f}" for d in runs)
        report.add(
            "firmware",
            f"{name}: 1 at a time, MiB/s (runs: {speeds})",
            f"median {medians[name] / 2**20:,.0f} MiB/s",
        )
        report.add(
            "firmware",
            f"{name}: server CPU per GB; client CPUs busy, 1 / {scale.parallel_downloads} at once",
            f"{cpu[name]:,.2f} s; {client[name][0]:.2f} / {client[name][1]:.2f}",
        )
        downloads, wall = parallel[name]
        each = ", ".join(f"{d.speed / 2**20:,.0f}" for d in downloads)
        report.add(
            "firmware",
            f"{name}: {scale.parallel_downloads} at once, all done in {wall:.1f} s (each: {each})",
            f"{aggregate[name] / 2**20:,.0f} MiB/s total",
        )
    ratio_row(
        report,
        "firmware",
        "ratio relay up / nginx, 1 at a time (median)",
        medians["relay up"],
        medians["nginx"],
        1.0,
    )
    ratio_row(
        report,
        "firmware",
        f"ratio relay up / nginx, {scale.parallel_downloads} at once (total)",
        aggregate["relay up"],
        aggregate["nginx"],
        1.0,
    )
    report.facts["firmware"] = {
        "size": size,
        "sequential": {n: [asdict(d) for d in r] for n, r in sequential.items()},
        "parallel": {
            n: {"wall": w, "runs": [asdict(d) for d in r]} for n, (r, w) in parallel.items()
        },
        "server_cpu_s_per_gb": cpu,
        "client_cpus_busy": client,
    }


def measure_sim(
    report: Report,
    scale: Scale,
    relay: subprocess.Popen[bytes],
    facts: dict[str, Any],
    workdir: Path,
    nofile: tuple[int, int],
    profile: Callable[[str], contextlib.AbstractContextManager[Path | None]],
) -> None:
    n = scale.phones
    print(f"\n-- relay sim: {n:,} phones booting at once (--concurrency {n})")
    cmd = [
        *relay_cli(),
        "sim",
        "--phones",
        str(n),
        "--server",
        facts["provisioning"],
        "--user",
        facts["prov_user"],
        "--password",
        facts["prov_password"],
        "--cacert",
        facts["ca_cert"],
        "--json",
        "--concurrency",
        str(n),
        "--timeout",
        str(scale.sim_timeout),
    ]
    peak_reset = reset_peak_rss(relay.pid)
    samples: list[tuple[float, int, int]] = []
    stop_sampling = threading.Event()
    before_cpu, before_net = cpu_seconds([relay.pid]), net_counters()
    busy_before = busy_cpu_seconds()
    err_path = workdir / "sim.err"
    with err_path.open("wb") as err, profile("sim"):
        started = time.perf_counter()
        proc = subprocess.Popen(CPUS.run_on("client", cmd), stdout=subprocess.PIPE, stderr=err)

        def sample() -> None:
            while not stop_sampling.wait(0.5):
                samples.append(
                    (
                        time.perf_counter() - started,
                        proc_status(relay.pid).get("VmRSS", 0),
                        proc_status(proc.pid).get("VmRSS", 0),
                    )
                )

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        timer = threading.Timer(scale.sim_timeout + 60, proc.kill)
        timer.start()
        try:
            out = proc.stdout.read().decode(errors="replace") if proc.stdout else ""
            _, status, usage = os.wait4(proc.pid, 0)
            proc.returncode = os.waitstatus_to_exitcode(status)
        finally:
            timer.cancel()
            kill_if_running(proc)
            stop_sampling.set()
            sampler.join()
        wall = time.perf_counter() - started
    server_cpu = cpu_seconds([relay.pid]) - before_cpu
    sim_cpu = usage.ru_utime + usage.ru_stime
    others = max(0.0, busy_cpu_seconds() - busy_before - server_cpu - sim_cpu)
    net = delta(net_counters(), before_net)
    relay_mem = proc_status(relay.pid)
    lines = [line for line in out.splitlines() if line.startswith("{")]
    if not lines:
        tail = err_path.read_text(errors="replace")[-2000:]
        raise RuntimeError(f"relay sim printed no summary (exit {proc.returncode}):\n{tail}")
    summary = json.loads(lines[-1])
    errors: list[str] = summary["errors"]
    kinds = collections.Counter(re.sub(r"^[0-9a-f]{12}: ", "", e)[:90] for e in errors)
    boot = summary.get("boot_seconds") or {}
    goal_ok = summary["provisioned"] == n and not errors
    report.add(
        "sim",
        f"provisioned / failed of {n:,} (exit {proc.returncode})",
        f"{summary['provisioned']:,} / {summary['failed']:,}",
        f"all of {n:,}",
        summary["provisioned"] == n,
    )
    report.add("sim", "errors", f"{len(errors):,}", "0", not errors)
    report.add("sim", "time until all settled (relay sim wall clock)", f"{wall:,.1f} s")
    if boot:
        report.add(
            "sim",
            "boot time per phone min / median / max",
            f"{boot['min']:.1f} / {boot['median']:.1f} / {boot['max']:.1f} s",
        )
    report.add(
        "sim",
        "requests (new TLS connection each) / per second",
        f"{summary['requests']:,} / {summary['requests'] / wall:,.0f}",
    )
    report.add(
        "sim",
        "CPU relay up / relay sim / others (cores)",
        f"{server_cpu / wall:.2f} / {sim_cpu / wall:.2f} / {others / wall:.2f}",
    )
    report.add(
        "sim",
        f"TCP connections opened / listen queue overflows{NET_SCOPE[0]}",
        f"{net.get('Tcp:ActiveOpens', 0):,} / {net.get('TcpExt:ListenOverflows', 0):,}",
    )
    report.add(
        "sim",
        "peak RSS relay up (VmHWM" + (", reset before)" if peak_reset else ")"),
        mib(relay_mem.get("VmHWM", 0) * 1024),
    )
    report.add("sim", "peak RSS relay sim (ru_maxrss)", mib(usage.ru_maxrss * 1024))
    report.add(
        "sim", "open-file limit (soft / hard) given to both", f"{nofile[0]:,} / {nofile[1]:,}"
    )
    for kind, count in kinds.most_common(5):
        report.add("sim", f"error x{count}: {kind}", "")
    if not goal_ok:
        print(f"  sim stderr tail: {err_path.read_text(errors='replace')[-500:]}")
    report.facts["sim"] = {
        "summary": {k: v for k, v in summary.items() if k != "errors"},
        "errors_first": errors[:50],
        "wall_s": wall,
        "relay_cpu_s": server_cpu,
        "sim_cpu_s": sim_cpu,
        "others_cpu_s": others,
        "sim_maxrss_kib": usage.ru_maxrss,
        "relay_status": relay_mem,
        "net": net,
        "rss_samples": samples,
    }


# -- main ------------------------------------------------------------------------------------


def tool_versions() -> dict[str, str]:
    out: dict[str, str] = {}
    for name, args in (("nginx", ["-v"]), ("wrk", ["-v"]), ("curl", ["--version"])):
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            done = subprocess.run([name, *args], capture_output=True, timeout=10)
            text = (done.stdout + done.stderr).decode(errors="replace").strip()
            out[name] = text.splitlines()[0] if text else "?"
    return out


def run(scale: Scale, args: argparse.Namespace) -> Report:
    for tool in ("nginx", "wrk", "curl", "openssl"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is not on PATH (Debian: apt-get install nginx wrk curl)")
    pyspy = None
    if args.profile:
        pyspy = args.py_spy or shutil.which("py-spy")
        if pyspy is None:
            raise SystemExit("--profile needs py-spy (pip install py-spy; or --py-spy PATH)")
        args.profile.mkdir(parents=True, exist_ok=True)
    rng = random.Random(args.seed)
    report = Report()
    report.facts["tools"] = tool_versions()
    report.facts["private_netns"] = NET_SCOPE[0] == ""
    plan_cpus(not args.no_pin)
    report.facts["cpus"] = CPUS.describe()
    print(f"CPU layout: {CPUS.describe()}", flush=True)
    nofile = raise_nofile()
    root = args.keep or Path(tempfile.mkdtemp(prefix="bench-prov-"))
    data_dir, workdir, static = root / "relay", root / "work", root / "static"
    workdir.mkdir(parents=True)
    (static / "images").mkdir(parents=True)
    started = time.perf_counter()
    try:
        print(f"building in {root}: {scale.devices:,} devices", flush=True)
        macs, pop = populate(data_dir, scale, rng)
        print(f"  setup: {pop}", flush=True)
        report.facts["population"] = pop
        image = workdir / "image.bin"
        size = scale.image_mb * 1_000_000
        image_sha = write_image(image, size)
        up_cmd = relay_cli()
        if args.relay_up_cmd:  # relay up runs in its work directory: make paths absolute
            up_cmd = [
                str(Path(t).absolute()) if Path(t).exists() else t
                for t in shlex.split(args.relay_up_cmd)
            ]
        report.facts["relay_up_cmd"] = up_cmd
        with (
            relay_up(data_dir, workdir, up_cmd) as (relay, facts),
            contextlib.ExitStack() as stack,
        ):
            user, password = facts["prov_user"], facts["prov_password"]
            if not password:
                raise RuntimeError("relay up did not show the provisioning password")
            auth = basic(user, password)
            base = facts["provisioning"]
            cold, sizes, differ = asyncio.run(warm(base, macs, auth, facts["ca_cert"], static))
            print("\n-- setup")
            report.add("setup", "CPU layout", CPUS.describe())
            report.add(
                "setup",
                f"first fetch of {len(macs):,} profile files (build + cache, 8 at a time)",
                f"{cold:.2f} s ({len(macs) / cold:,.0f} files/s)",
            )
            q = statistics.quantiles(sizes, n=10)
            report.add(
                "setup",
                "profile file size min / median / p90 / max",
                f"{min(sizes):,} / {statistics.median(sizes):,.0f} / {q[-1]:,.0f} / "
                f"{max(sizes):,} B",
            )
            report.add("setup", "second fetch differs from the first (sample of 20)", str(differ))
            row, upload_s = asyncio.run(upload_image(facts["api"], facts["token"], image))
            if row["sha256"] != image_sha:
                raise RuntimeError("the uploaded image's sha256 differs from the file's")
            report.add(
                "setup",
                f"image upload, {mib(size)} streamed (POST /api/v1/images)",
                f"{upload_s:.2f} s ({size / upload_s / 2**20:,.0f} MiB/s)",
            )
            blob = data_dir / "cloud" / "files" / "blobs" / row["sha256"]
            image_name = f"images/{row['id']}/3111-48840-001.sip.ld"
            (static / "images" / row["id"]).mkdir()
            try:
                os.link(blob, static / image_name)  # the same file: same page cache
            except OSError:
                shutil.copyfile(blob, static / image_name)
            image.unlink()
            report.facts["relay_after_setup"] = proc_status(relay.pid)

            nginx_proc, nginx_ports = stack.enter_context(
                nginx(workdir, static, data_dir / "tls", user, password)
            )
            nginx_base = f"https://{HOST}:{nginx_ports['ssha']}/"
            floor_proc, floor_port = stack.enter_context(
                aiohttp_floor(workdir, static, data_dir / "tls", auth)
            )
            relay_pids: Callable[[], list[int]] = lambda: [relay.pid]  # noqa: E731
            nginx_pids: Callable[[], list[int]] = lambda: [  # noqa: E731
                nginx_proc.pid,
                *children_of(nginx_proc.pid),
            ]

            def profile(name: str) -> contextlib.AbstractContextManager[Path | None]:
                return profiled(pyspy, relay.pid, args.profile, name)

            script = wrk_script(workdir, macs, auth)
            files_targets = {"relay up": Target(base, relay_pids, CPUS.server)}
            if CPUS.server:  # the default deployment: threads wherever the scheduler puts them
                all_cpus = set(os.sched_getaffinity(0))
                files_targets["relay up, unpinned"] = Target(base, relay_pids, all_cpus)
            files_targets |= {
                "nginx SSHA": Target(nginx_base, nginx_pids),
                "nginx apr1": Target(f"https://{HOST}:{nginx_ports['apr1']}/", nginx_pids),
                "aiohttp floor": Target(f"https://{HOST}:{floor_port}/", lambda: [floor_proc.pid]),
            }
            measure_files(report, scale, script, files_targets, profile)
            measure_firmware(
                report,
                scale,
                size,
                {
                    "relay up": Target(base + image_name, relay_pids, CPUS.server),
                    "nginx": Target(nginx_base + image_name, nginx_pids),
                },
                facts["ca_cert"],
                user,
                password,
                profile,
            )
            report.facts["relay_before_sim"] = proc_status(relay.pid)
            report.facts["nginx_worker"] = {p: proc_status(p) for p in nginx_pids()}
            stack.close()  # nginx is not needed for the simulator
            if CPUS.server:
                set_affinity(relay.pid, CPUS.server)
            measure_sim(report, scale, relay, facts, workdir, nofile, profile)
            logged = (workdir / "relay-up.err").read_text(errors="replace")
            report.add(
                "relay up log",
                "ERROR lines / tracebacks in relay up's log",
                f"{logged.count('ERROR'):,} / {logged.count('Traceback'):,}",
            )
            before = report.facts["relay_before_sim"]
            report.add(
                "memory",
                "relay up peak RSS before the simulator (files, firmware)",
                mib(before.get("VmHWM", 0) * 1024),
            )
            for pid, status in report.facts["nginx_worker"].items():
                report.add(
                    "memory", f"nginx process {pid} peak RSS", mib(status.get("VmHWM", 0) * 1024)
                )
    finally:
        if args.keep is None:
            shutil.rmtree(root, ignore_errors=True)
    report.facts["total_s"] = time.perf_counter() - started
    if args.profile:
        print_profiles(args.profile, report)
    return report


def print_profiles(out_dir: Path, report: Report, what: str = "relay up", top: int = 12) -> None:
    print(f"\n-- py-spy hot spots of {what} (raw profiles in {out_dir})")
    spots: dict[str, list[tuple[str, float, float]]] = {}
    for raw in sorted(out_dir.glob("*.txt")):
        spots[raw.stem] = hot_spots(raw, top)
        share = gil_share(raw)
        held = "" if share is None else f"; the GIL was held {share:.0%} of the time"
        print(f"\n  {raw.stem}: self % / inclusive % of GIL-holding samples{held}")
        for frame, own, incl in spots[raw.stem]:
            print(f"    {own:5.1f} {incl:5.1f}  {frame}")
    report.facts["hot_spots"] = spots


def parse_args(argv: Sequence[str] | None) -> tuple[Scale, argparse.Namespace]:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help="100 devices, 20 MB image, 200 phones (~1 min)"
    )
    parser.add_argument("--devices", type=int)
    parser.add_argument("--image-mb", type=int)
    parser.add_argument("--phones", type=int)
    parser.add_argument("--wrk-seconds", type=float)
    parser.add_argument("--wrk-connections", type=int)
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    parser.add_argument("--keep", type=Path, help="work in this (new) directory and keep it")
    parser.add_argument(
        "--profile", type=Path, help="record py-spy profiles of relay up into this directory"
    )
    parser.add_argument("--py-spy", help="py-spy executable (default: on PATH)")
    parser.add_argument(
        "--relay-up-cmd",
        help="command running the relay CLI for `relay up` only, e.g. a what-if wrapper "
        "(default: the venv's relay); the simulator always uses the venv's relay",
    )
    parser.add_argument(
        "--no-pin",
        action="store_true",
        help="do not pin servers to one CPU and load generators to the others",
    )
    parser.add_argument(
        "--no-netns",
        action="store_true",
        help="stay in the machine's network namespace (TCP counters then include others)",
    )
    args = parser.parse_args(argv)
    scale = QUICK if args.quick else FULL
    overrides = {
        name: getattr(args, name)
        for name in ("devices", "image_mb", "phones", "wrk_seconds", "wrk_connections")
        if getattr(args, name) is not None
    }
    scale = Scale(**{**asdict(scale), **overrides})
    if scale.devices < 1 or scale.phones < 1 or scale.image_mb < 1:
        parser.error("--devices, --phones and --image-mb must be at least 1")
    return scale, args


def main(argv: Sequence[str] | None = None) -> int:
    scale, args = parse_args(argv)
    if not args.no_netns:
        in_private_netns(sys.argv[1:] if argv is None else argv)
    when = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    print(f"bench_provisioning {' '.join(sys.argv[1:])}\n{when}; {machine()}\n{scale}", flush=True)
    report = run(scale, args)
    finish(report, when, scale, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
