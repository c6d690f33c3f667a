"""`relay sim`: boot N simulated phones against a provisioning server and report.

relay sim --phones 200 --server URL [--server URL2 ...] --user U --password P
          [--cacert CA] [--json] [--seed S] [--concurrency C] [--timeout T]

Exit status 0 only when every phone was provisioned.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from relay.sim.fleet import DEFAULT_CONCURRENCY, FIRST_IP, Fleet

PROGRESS_INTERVAL = 1.0
_ERRORS_SHOWN = 20


def add_parser(subparsers: Any) -> None:
    """Add the `sim` command to the `relay` command's subparsers."""
    parser = subparsers.add_parser(
        "sim", help="boot simulated phones against a provisioning server and report"
    )
    _add_arguments(parser)


def _add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--phones", type=_positive_int, default=10, help="how many (default 10)")
    parser.add_argument(
        "--server",
        action="append",
        required=True,
        dest="servers",
        metavar="URL",
        help="provisioning server URL; repeat for failover addresses",
    )
    parser.add_argument("--user", default="", help="HTTP basic user name")
    parser.add_argument("--password", default="", help="HTTP basic password")
    parser.add_argument("--cacert", help="CA file to verify an https:// server with")
    parser.add_argument("--json", action="store_true", help="print one summary JSON line")
    parser.add_argument("--seed", type=int, default=0, help="fleet seed: MACs, models, firmware")
    parser.add_argument(
        "--concurrency",
        type=_positive_int,
        default=DEFAULT_CONCURRENCY,
        help=f"phones booting at once (default {DEFAULT_CONCURRENCY})",
    )
    parser.add_argument(
        "--timeout", type=float, default=300.0, help="seconds before unsettled phones fail"
    )
    parser.add_argument(
        "--first-ip", default=FIRST_IP, help=f"first loopback source address (default {FIRST_IP})"
    )


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not a positive number")
    return value


def run(args: argparse.Namespace) -> int:
    """Boot every phone once; 0 if all were provisioned, 1 otherwise, 2 on bad arguments."""
    if args.cacert and not Path(args.cacert).is_file():
        print(f"relay sim: the CA file {args.cacert} does not exist", file=sys.stderr)
        return 2
    try:
        fleet = Fleet.build(
            args.phones,
            args.servers,
            user=args.user,
            password=args.password,
            cacert=args.cacert,
            seed=args.seed,
            first_ip=args.first_ip,
            concurrency=args.concurrency,
        )
    except ValueError as exc:
        print(f"relay sim: {exc}", file=sys.stderr)
        return 2
    summary = asyncio.run(_boot(fleet, args.timeout, progress=not args.json))
    if args.json:
        print(json.dumps(summary, sort_keys=True), flush=True)
    else:
        _print_summary(summary)
    return 0 if summary["failed"] == 0 and summary["provisioned"] == summary["phones"] else 1


async def _boot(fleet: Fleet, seconds: float, *, progress: bool) -> dict[str, Any]:
    async with fleet:
        ticker = asyncio.create_task(_progress(fleet)) if progress else None
        try:
            return await fleet.boot_all(timeout=seconds)
        finally:
            if ticker is not None:
                ticker.cancel()
                await asyncio.gather(ticker, return_exceptions=True)


async def _progress(fleet: Fleet) -> None:
    """A line a second for a person watching."""
    started = time.monotonic()
    total = len(fleet.phones)
    while True:
        await asyncio.sleep(PROGRESS_INTERVAL)
        counts = fleet.counts()
        print(
            f"{time.monotonic() - started:6.1f}s  provisioned {counts['provisioned']}/{total}"
            f"  failed {counts['failed']}  booting {counts['booting']}",
            flush=True,
        )


def _print_summary(summary: dict[str, Any]) -> None:
    timing = summary["boot_seconds"]
    print(
        f"{summary['provisioned']}/{summary['phones']} provisioned, {summary['failed']} failed, "
        f"{summary['reboots']} reboots, {summary['requests']} requests, "
        f"{summary['bytes_down']} bytes down, {summary['bytes_up']} bytes up"
    )
    if timing is not None:
        print(
            f"boot time: min {timing['min']:.3f}s  median {timing['median']:.3f}s  "
            f"max {timing['max']:.3f}s"
        )
    errors = summary["errors"]
    for error in errors[:_ERRORS_SHOWN]:
        print(f"  {error}")
    if len(errors) > _ERRORS_SHOWN:
        print(f"  ... and {len(errors) - _ERRORS_SHOWN} more errors (see --json)")


def main(argv: Sequence[str] | None = None) -> int:
    """`python -m relay.sim.cli ...`, the same as `relay sim ...`."""
    parser = argparse.ArgumentParser(prog="relay sim", description=__doc__.split("\n")[0])
    _add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
