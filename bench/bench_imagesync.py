"""Sync of a 1 GB image set by the download agent, and its resume after kill -9 (issue 6).

The cloud is `relay up --no-agent --json --free-ports --log-format json` in its own
process (the embedded control plane; its API and the agent routes are plain HTTP on
127.0.0.1). `--images` (4) images of `--image-mb` (256) MB of random bytes are
uploaded with `POST /api/v1/images` (curl streams each file), so the cloud serves them
itself from `GET /api/v1/agent/images/{id}/content` (Range, ETag). Relays are registered
with `relay agent register`; the agent is `python -m download_agent --data-dir DIR`, a
process of its own, as on a relay.

1. **throughput**: relay A's agent runs and is idle; `PUT /api/v1/relay-images [ids]`
   (the cloud wakes the agent's long poll); the agent downloads the images one after
   the other, hashing as it writes, fsyncs and publishes each (blobs/<sha256>, then
   index.json). Time from the PUT until the index lists all images, watched on the
   agent's disk every 20 ms; MB/s over that time; the agent's CPU per GB; then the time
   until the cloud's `GET /api/v1/relays/{id}/images` says `synced` for all (the agent
   reports every 2 s).
2. **the real-peer reference**: curl fetches the same bytes from the same routes with
   the same relay credential, one image after the other: written to a file on the same
   disk; the same, then fsync and sha256 of the file (the work the agent adds); and
   to /dev/null.
3. **resume**: relay B's agent starts syncing the set (already chosen, so at once) and
   is killed with SIGKILL when the bytes on its disk reach `--kill-at` (0.6) of the
   set: with equal images 0.5 falls on an image boundary, where nothing is partial, so
   the default lands in the middle of image 3 of 4. It is restarted at once. Reported:
   the partial at the kill, seconds from the restart until bytes flow again (the
   partial grows; it is re-hashed first) and until all images are published; and the
   proof that it resumed rather than started over: the partial never shrank below its
   size at the kill (polled every 10 ms) and the cloud answered the resumed request
   with 206 (its access log).

    .venv/bin/python bench/bench_imagesync.py              # 4 x 256 MB (~2-3 min)
    .venv/bin/python bench/bench_imagesync.py --quick      # 4 x 32 MB (~30 s)
    .venv/bin/python bench/bench_imagesync.py --images 2 --image-mb 512 --json /tmp/s.json

Needs curl. Loopback only. Every process started (relay up, the agents, curl) is
stopped at the end, errors included; every wait is bounded.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench_provisioning import cpu_seconds, kill_if_running, relay_cli, relay_process, stop
from bench_upgrade import Api
from report import Report, begin, finish

from management_agent.link import Identity

FAMILY = "VVX"
FILENAME = "sip.ld"
STEP_TIMEOUT = 900.0
CURL_TIMEOUT = 600


@dataclass(frozen=True, slots=True)
class Scale:
    images: int
    image_mb: int
    kill_at: float


FULL = Scale(4, 256, 0.6)
QUICK = Scale(4, 32, 0.6)


@dataclass(frozen=True, slots=True)
class Image:
    id: str
    sha256: str
    size: int


# -- processes -----------------------------------------------------------------------------


@contextlib.contextmanager
def cloud(work: Path) -> Iterator[tuple[subprocess.Popen[bytes], dict[str, Any]]]:
    """The embedded cloud alone (no relay agent in it), JSON logs to WORK/cloud.err."""
    argv = [*relay_cli(), "up", "--no-agent", "--json", "--free-ports", "--log-format", "json"]
    argv = [*argv, "--data-dir", str(work / "cloud")]
    with relay_process(argv, work, "relay up (cloud)", "cloud.err") as running:
        yield running


def register(work: Path, facts: dict[str, Any], name: str) -> tuple[Path, Identity]:
    """`relay agent register` into WORK/NAME; the credential the agent will use."""
    data_dir = work / name
    done = subprocess.run(
        [
            *relay_cli(),
            "agent",
            "register",
            "--cloud",
            facts["api"],
            "--tenant",
            facts["tenant"],
            "--pin",
            facts["pin"],
            "--name",
            name,
            "--data-dir",
            str(data_dir),
            "--json",
        ],
        capture_output=True,
        timeout=60,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"relay agent register failed: {done.stdout!r} {done.stderr!r}")
    identity = Identity.load(data_dir / "agent" / "credential.json")
    if identity is None:
        raise RuntimeError("relay agent register wrote no credential")
    return data_dir, identity


def start_agent(data_dir: Path, log: Path) -> subprocess.Popen[bytes]:
    argv = [sys.executable, "-m", "download_agent", "--data-dir", str(data_dir)]
    with log.open("ab") as err:
        return subprocess.Popen(
            [*argv, "--log-format", "json"],
            stdout=subprocess.DEVNULL,
            stderr=err,
            stdin=subprocess.DEVNULL,
        )


@contextlib.contextmanager
def agent(data_dir: Path, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    proc = start_agent(data_dir, log)
    try:
        yield proc
    finally:
        stop(proc, "download agent")


# -- the image set -------------------------------------------------------------------------


def upload(work: Path, api: Api, scale: Scale) -> list[Image]:
    """Random images, streamed to the cloud by curl; the source files are deleted after."""
    images = []
    for n in range(scale.images):
        path = work / f"upload-{n}.bin"
        with path.open("wb") as file:
            for _ in range(scale.image_mb):
                file.write(os.urandom(1_000_000))
        url = f"{api.base}/images?model={FAMILY}&version=7.1.0.{n + 1}&filename={FILENAME}"
        done = subprocess.run(
            [
                "curl",
                "--silent",
                "--show-error",
                "--max-time",
                str(CURL_TIMEOUT),
                "-X",
                "POST",
                "-T",
                str(path),
                "-H",
                f"Authorization: Bearer {api.token}",
                "-H",
                "Content-Type: application/octet-stream",
                "-w",
                "\n%{http_code}",
                url,
            ],
            capture_output=True,
            timeout=CURL_TIMEOUT + 30,
            check=False,
        )
        body, _, status = done.stdout.decode(errors="replace").rpartition("\n")
        if done.returncode != 0 or status != "201":
            raise RuntimeError(f"upload {n}: {status} {body[:300]} {done.stderr!r}")
        answer = json.loads(body)
        images.append(Image(str(answer["id"]), str(answer["sha256"]), int(answer["size"])))
        path.unlink()
    return images


def on_disk(store: Path, images: Sequence[Image]) -> tuple[int, int, dict[str, int]]:
    """(bytes in blobs and partials, images listed in index.json, partial sizes by sha)."""
    done = 0
    partials: dict[str, int] = {}
    for image in images:
        with contextlib.suppress(FileNotFoundError):
            done += (store / "blobs" / image.sha256).stat().st_size
            continue
        with contextlib.suppress(FileNotFoundError):
            size = (store / "partial" / f"{image.sha256}.part").stat().st_size
            partials[image.sha256] = size
            done += size
    listed = 0
    with contextlib.suppress(OSError, ValueError):
        index = json.loads((store / "index.json").read_bytes())
        wanted = {i.id for i in images}
        listed = sum(1 for i in index.get("images", []) if i.get("id") in wanted)
    return done, listed, partials


def wait_for(what: str, check: Callable[[], bool], step: float = 0.02) -> float:
    """perf_counter() when CHECK first holds (polled every STEP), bounded."""
    deadline = time.perf_counter() + STEP_TIMEOUT
    while not check():
        if time.perf_counter() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(step)
    return time.perf_counter()


def wait_cloud_synced(api: Api, relay_id: str, images: Sequence[Image]) -> float:
    def synced() -> bool:
        states = api.call("GET", f"/relays/{relay_id}/images")
        done = {s["image"] for s in states if s["status"] == "synced"}
        return all(i.id in done for i in images)

    return wait_for("the cloud to show every image synced", synced, step=0.2)


# -- the parts -----------------------------------------------------------------------------


def throughput(
    report: Report, work: Path, api: Api, facts: dict[str, Any], images: Sequence[Image]
) -> Identity:
    section = "agent sync"
    total = sum(i.size for i in images)
    data_dir, identity = register(work, facts, "relay-a")
    store = data_dir / "images"
    with agent(data_dir, work / "agent-a.err") as proc:
        log = work / "agent-a.err"
        wait_for("the agent's first image set", lambda: b'"image_set"' in log.read_bytes())
        time.sleep(0.5)  # its next long poll is open: the set change wakes it
        cpu = cpu_seconds([proc.pid])
        started = time.perf_counter()
        api.call("PUT", "/relay-images", [i.id for i in images])
        first = wait_for("the first byte", lambda: on_disk(store, images)[0] > 0, step=0.005)
        done = wait_for("all published", lambda: on_disk(store, images)[1] == len(images))
        cpu = cpu_seconds([proc.pid]) - cpu
        cloud_synced = wait_cloud_synced(api, identity.relay_id, images)
    seconds = done - started
    report.add(section, "image set", f"{len(images)} x {images[0].size / 1e6:,.0f} MB")
    report.add(section, "PUT relay-images -> first byte on disk", f"{first - started:.2f} s")
    report.add(section, "PUT -> all published (index.json)", f"{seconds:.1f} s")
    report.add(section, "agent: MB/s over that time", f"{total / 1e6 / seconds:,.0f}")
    report.add(section, "agent: CPU per GB (hash, write, fsync)", f"{cpu / (total / 1e9):.2f} s")
    report.add(section, "PUT -> cloud shows all synced", f"{cloud_synced - started:.1f} s")
    report.facts["sync"] = {"seconds": seconds, "first_byte_s": first - started, "cpu_s": cpu}
    return identity


def curl_reference(
    report: Report, work: Path, api: Api, identity: Identity, images: Sequence[Image]
) -> None:
    section = "curl (peer)"
    total = sum(i.size for i in images)
    kinds = (
        ("to a file", work / "curl.out", False),
        ("to a file, then fsync + sha256 (as the agent)", work / "curl.out", True),
        ("to /dev/null", Path("/dev/null"), False),
    )
    for label, out, settle in kinds:
        seconds = 0.0
        for image in images:
            started = time.perf_counter()
            done = subprocess.run(
                [
                    "curl",
                    "--silent",
                    "--show-error",
                    "--max-time",
                    str(CURL_TIMEOUT),
                    "-H",
                    f"Authorization: Relay {identity.relay_id}:{identity.secret}",
                    "-o",
                    str(out),
                    "-w",
                    "%{size_download} %{time_total}",
                    f"{api.base}/agent/images/{image.id}/content",
                ],
                capture_output=True,
                timeout=CURL_TIMEOUT + 30,
                check=False,
            )
            size, _, took = done.stdout.decode().partition(" ")
            if done.returncode != 0 or int(size or 0) != image.size:
                raise RuntimeError(f"curl {image.id}: {done.stdout!r} {done.stderr!r}")
            seconds += float(took)
            if settle:
                fsync_and_hash(out, image)
                seconds = seconds - float(took) + time.perf_counter() - started
        (work / "curl.out").unlink(missing_ok=True)
        rate = total / 1e6 / seconds
        report.add(section, f"curl {label}, one image after the other: MB/s", f"{rate:,.0f}")
        report.facts[f"curl {label} MB/s"] = rate
    agent_rate = total / 1e6 / report.facts["sync"]["seconds"]
    for label, _out, _settle in kinds[:2]:
        ratio = agent_rate / report.facts[f"curl {label} MB/s"]
        report.add(section, f"agent / curl {label}", f"x{ratio:.2f}")


def fsync_and_hash(path: Path, image: Image) -> None:
    """What the agent adds to a download: the bytes made durable and their sha256 checked
    (it hashes while writing; here after, from the page cache)."""
    digest = hashlib.sha256()
    with path.open("rb") as file:
        os.fsync(file.fileno())
        while block := file.read(1 << 20):
            digest.update(block)
    if digest.hexdigest() != image.sha256:
        raise RuntimeError(f"curl {image.id}: the bytes differ from the image")


def resume(
    report: Report,
    work: Path,
    facts: dict[str, Any],
    images: Sequence[Image],
    scale: Scale,
) -> None:
    section = "kill -9, resume"
    total = sum(i.size for i in images)
    data_dir, _identity = register(work, facts, "relay-b")
    store = data_dir / "images"
    log = work / "agent-b.err"
    proc = start_agent(data_dir, log)
    try:
        wait_for(
            f"{scale.kill_at:.0%} of the set",
            lambda: (
                on_disk(store, images)[0] >= scale.kill_at * total
                and any(on_disk(store, images)[2].values())
            ),
            step=0.005,
        )
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        kill_if_running(proc)
    at_kill, _listed, partials = on_disk(store, images)
    (sha, kept), *_ = partials.items()
    nth = next(n for n, i in enumerate(images, 1) if i.sha256 == sha)
    restart_wall = time.time()
    smallest = kept
    restarted = time.perf_counter()
    proc = start_agent(data_dir, log)
    try:

        def flowing() -> bool:
            nonlocal smallest
            size = on_disk(store, images)[2].get(sha)
            if size is None:  # published already
                return True
            smallest = min(smallest, size)
            return size > kept

        flow = wait_for("bytes to flow again", flowing, step=0.005)
        done = wait_for("all published", lambda: on_disk(store, images)[1] == len(images))
    finally:
        stop(proc, "download agent")
    statuses = content_statuses(work / "cloud.err", restart_wall, images[nth - 1])
    report.add(
        section,
        "killed at (bytes on disk / set)",
        f"{at_kill / 1e6:,.0f} / {total / 1e6:,.0f} MB ({at_kill / total:.0%})",
    )
    report.add(
        section, f"partial of image {nth} of {len(images)} at the kill", f"{kept / 1e6:,.1f} MB"
    )
    report.add(section, "restart -> bytes flow again", f"{flow - restarted:.2f} s")
    report.add(section, "restart -> all published", f"{done - restarted:.1f} s")
    report.add(
        section,
        "remaining MB / s to publish them",
        f"{(total - at_kill) / 1e6:,.0f} / {done - restarted:.1f}",
    )
    resumed = smallest >= kept
    report.add(
        section,
        "partial never shrank after the restart (smallest seen)",
        f"{smallest / 1e6:,.1f} MB",
        f">= {kept / 1e6:,.1f} MB",
        resumed,
    )
    report.add(
        section,
        f"cloud's answers to GETs of image {nth} sent after the restart",
        ", ".join(f"{code}: {count}" for code, count in sorted(statuses.items())) or "none",
        "206 only (Range)",
        set(statuses) == {206},
    )
    report.facts["resume"] = {
        "at_kill": at_kill,
        "partial": kept,
        "image": nth,
        "flow_s": flow - restarted,
        "done_s": done - restarted,
        "smallest_partial": smallest,
        "statuses": statuses,
    }


def content_statuses(log: Path, since: float, image: Image) -> dict[int, int]:
    """Status codes of the cloud's access-log lines for IMAGE's content, of the requests
    that arrived after SINCE (wall clock; a line is written when its answer ends)."""
    counts: dict[int, int] = {}
    with log.open("rb") as file:
        for raw in file:
            with contextlib.suppress(ValueError):
                line = json.loads(raw)
                arrived = float(line.get("ts", 0)) - float(line.get("ms", 0)) / 1000
                ours = str(line.get("path")).endswith(f"/agent/images/{image.id}/content")
                if line.get("event") == "request" and ours and arrived >= since:
                    status = int(line["status"])
                    counts[status] = counts.get(status, 0) + 1
    return counts


def run(scale: Scale, args: argparse.Namespace) -> Report:
    report = Report()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-imagesync-") as tmp:
        work = Path(tmp)
        with cloud(work) as (_proc, facts):
            api = Api(facts["api"], facts["token"], facts.get("ca_cert"))
            print(f"cloud ready: {facts['api']}; uploading the images", flush=True)
            upload_started = time.perf_counter()
            images = upload(work, api, scale)
            report.add(
                "setup",
                "upload (POST /images, curl) of the set",
                f"{time.perf_counter() - upload_started:.1f} s",
            )
            print("\n-- the agent syncs the set", flush=True)
            identity = throughput(report, work, api, facts, images)
            print("\n-- curl fetches the same bytes", flush=True)
            curl_reference(report, work, api, identity, images)
            print(f"\n-- kill -9 at {scale.kill_at:.0%}, restart", flush=True)
            resume(report, work, facts, images, scale)
    report.facts["total_s"] = time.perf_counter() - started
    report.facts["load_avg"] = os.getloadavg()
    return report


def parse_args(argv: Sequence[str] | None) -> tuple[Scale, argparse.Namespace]:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="4 x 32 MB")
    parser.add_argument("--images", type=int)
    parser.add_argument("--image-mb", type=int)
    parser.add_argument("--kill-at", type=float, help="fraction of the set (default 0.6)")
    parser.add_argument("--json", type=Path, help="also write the figures to this JSON file")
    args = parser.parse_args(argv)
    base = QUICK if args.quick else FULL
    scale = Scale(
        args.images or base.images, args.image_mb or base.image_mb, args.kill_at or base.kill_at
    )
    return scale, args


def main(argv: Sequence[str] | None = None) -> int:
    scale, args = parse_args(argv)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    when = begin("bench_imagesync", scale)
    report = run(scale, args)
    finish(report, when, scale, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
