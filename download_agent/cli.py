"""`relay images`: what the relay's download agent holds, for a person or a script.

relay images [--data-dir DIR] [--json] [--watch] [--interval S]

It reads `<data-dir>/images/status.json`, which the agent rewrites as it works
(download_agent.store), so it answers while the cloud is away and without
talking to the agent. Exit status: 0 when every image is synced, 1 when one
failed, 3 while some are still syncing (or nothing has been reported yet), so
a script can wait with `--watch`.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

STATUS_FILE = "status.json"
BAR = 24
SYNCED, FAILED, WAITING = 0, 1, 3


def add_parser(subparsers: Any) -> None:
    images = subparsers.add_parser(
        "images", help="the firmware images cached on this relay, with their sync state"
    )
    images.add_argument("--data-dir", type=Path, help="state directory (default ~/.relay)")
    images.add_argument("--json", action="store_true", help="machine-readable output")
    images.add_argument(
        "--watch", action="store_true", help="redraw until no image is syncing any more"
    )
    images.add_argument(
        "--interval", type=float, default=1.0, help="seconds between redraws (default 1)"
    )


def status_path(data_dir: Path | None) -> Path:
    return (data_dir or Path.home() / ".relay").expanduser() / "images" / STATUS_FILE


def read_status(path: Path) -> Mapping[str, Any] | None:
    """The agent's last status, or None when it has written none (or it is unreadable)."""
    try:
        value = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return None
    return value if isinstance(value, Mapping) else None


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if abs(n) < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    raise AssertionError("unreachable")


def bar(progress: float, width: int = BAR) -> str:
    """`[#########---------]  48%`: the part of an image already on the relay."""
    done = min(max(progress, 0.0), 1.0)
    filled = int(done * width)
    return f"[{'#' * filled}{'-' * (width - filled)}] {done * 100:3.0f}%"


def render(status: Mapping[str, Any]) -> list[str]:
    """The lines a person reads: one per image, a progress bar on those syncing."""
    images: Sequence[Mapping[str, Any]] = status.get("images") or []
    if not images:
        return ["The relay image set is empty: add images with PUT /api/v1/relay-images."]
    lines = []
    for image in images:
        name = f"{image.get('model', '?')} {image.get('version', '?')} {image.get('filename', '')}"
        state = str(image.get("status", "?"))
        size = _size(float(image.get("size", 0)))
        line = f"{image.get('id', '?'):<16}  {name:<32}  {size:>9}  {state:<8}"
        if state == "syncing":
            done = float(image.get("bytes_done", 0))
            rate = float(image.get("rate_bps", 0))
            line += f"  {bar(float(image.get('progress', 0)))}  {_size(done)}"
            if rate > 0:
                line += f"  {_size(rate)}/s"
        if image.get("reason"):
            line += f"  {image['reason']}"
        lines.append(line)
    free, reserve = status.get("free_bytes"), status.get("reserve_bytes")
    if isinstance(free, int) and isinstance(reserve, int):
        lines.append(f"disk: {_size(free)} free, {_size(reserve)} kept in reserve")
    return lines


def outcome(status: Mapping[str, Any] | None) -> int:
    if status is None:
        return WAITING
    states = {str(i.get("status")) for i in status.get("images") or []}
    if "failed" in states:
        return FAILED
    return WAITING if "syncing" in states else SYNCED


def main(args: argparse.Namespace) -> int:
    path = status_path(args.data_dir)
    while True:
        status = read_status(path)
        code = outcome(status)
        if args.json:
            print(json.dumps(status if status is not None else {"images": None}), flush=True)
        elif status is None:
            print(
                f"No image status at {path} yet: the download agent writes it once it runs "
                "(`relay up`, or `python -m download_agent`).",
                flush=True,
            )
        else:
            if args.watch and sys.stdout.isatty():
                print("\x1b[H\x1b[2J", end="")
            print("\n".join(render(status)), flush=True)
        if not args.watch or code != WAITING:
            return code
        time.sleep(max(args.interval, 0.1))
