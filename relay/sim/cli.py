"""`relay sim`: boot N simulated phones against a provisioning server and report.

relay sim --phones 200 --server URL [--server URL2 ...] --user U --password P
          [--cacert CA] [--json] [--seed S] [--concurrency C] [--timeout T]
          [--rest-port PORT] [--sip-port PORT] [--hold SECONDS]
          [--dhcp IFACE [--dhcp-retry SECONDS]] [--ztp URL]
          [--host NAME=ADDR[,ADDR...]] [--model MODEL[:PART]]

With --rest-port / --sip-port every phone serves its REST API (HTTPS) and
listens for check-sync NOTIFY (UDP) on its own loopback address after booting,
and the command keeps them running until interrupted (or for --hold seconds).

With --dhcp the phones get their addresses and boot servers by DHCP on IFACE
(then DHCPINFORM, then --ztp), as real phones do (phones.md section 1): run
it as root inside a network namespace, `ip netns exec NS relay sim --dhcp
IFACE ...`; --server is then optional, the servers in flash. --host is a
stand-in for DNS: a server name with several addresses, failed over in order.
Exit status 0 only when every phone was provisioned.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from relay.proto.polycom.models import PART_NUMBERS
from relay.sim.dhcpclient import DEFAULT_RETRY_BASE, Timing
from relay.sim.dhcpnet import DhcpNet
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
        default=[],
        dest="servers",
        metavar="URL",
        help="provisioning server URL (http, https, ftp, ftps, tftp); repeat for failover "
        "addresses; required unless --dhcp or --ztp finds the server",
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
    parser.add_argument(
        "--rest-port",
        type=_port,
        help="serve each phone's REST API over HTTPS on this port of its own address",
    )
    parser.add_argument(
        "--sip-port",
        type=_port,
        help="listen for SIP NOTIFY check-sync on this UDP port of each phone's address",
    )
    parser.add_argument(
        "--hold",
        type=float,
        default=None,
        metavar="SECONDS",
        help="with --rest-port/--sip-port: keep serving this long after booting "
        "(default: until interrupted)",
    )
    parser.add_argument(
        "--dhcp",
        metavar="IFACE",
        help="get each phone's address and boot server by DHCP on this interface "
        "(as root, inside a network namespace)",
    )
    parser.add_argument(
        "--dhcp-retry",
        type=_positive_float,
        default=DEFAULT_RETRY_BASE,
        metavar="SECONDS",
        help=f"first DHCP retransmission delay, doubled each time (default {DEFAULT_RETRY_BASE})",
    )
    parser.add_argument(
        "--ztp", metavar="URL", help="ZTP redirect service, e.g. https://relay:9443/ztp/v1"
    )
    parser.add_argument(
        "--host",
        action="append",
        default=[],
        dest="hosts",
        type=_host_entry,
        metavar="NAME=ADDR[,ADDR...]",
        help="addresses of a server host name, tried in order (up to 8; a stand-in for DNS)",
    )
    parser.add_argument(
        "--model",
        action="append",
        default=[],
        dest="models",
        type=_model_entry,
        metavar="MODEL[:PART]",
        help="draw the phones from these models (default: every known model); "
        "a model without a known part number needs one",
    )


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not a positive number")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{value} is not a positive number")
    return value


def _host_entry(text: str) -> tuple[str, tuple[str, ...]]:
    name, sep, addresses = text.partition("=")
    if not sep or not name or not addresses:
        raise argparse.ArgumentTypeError(f"{text!r} is not NAME=ADDR[,ADDR...]")
    return name, tuple(addresses.split(","))


def _model_entry(text: str) -> tuple[str, str]:
    model, _sep, part = text.partition(":")
    if not model or (not part and model not in PART_NUMBERS):
        raise argparse.ArgumentTypeError(f"model {model!r} has no known part number; give one")
    return model, part


def _port(text: str) -> int:
    value = int(text)
    if not 0 < value < 65536:
        raise argparse.ArgumentTypeError(f"{value} is not a port number (1-65535)")
    return value


def run(args: argparse.Namespace) -> int:
    """Boot every phone once; 0 if all were provisioned, 1 otherwise, 2 on bad arguments."""
    if args.cacert and not Path(args.cacert).is_file():
        print(f"relay sim: the CA file {args.cacert} does not exist", file=sys.stderr)
        return 2
    if not args.servers and args.dhcp is None and args.ztp is None:
        print("relay sim: give --server URL, or --dhcp IFACE or --ztp URL", file=sys.stderr)
        return 2
    try:
        dhcp = None
        if args.dhcp is not None:
            dhcp = DhcpNet(args.dhcp, timing=Timing(retry_base=args.dhcp_retry))
        fleet = Fleet.build(
            args.phones,
            args.servers,
            user=args.user,
            password=args.password,
            cacert=args.cacert,
            seed=args.seed,
            first_ip=args.first_ip,
            concurrency=args.concurrency,
            rest_port=args.rest_port,
            sip_port=args.sip_port,
            dhcp=dhcp,
            ztp_url=args.ztp,
            hosts=dict(args.hosts),
            models=dict(args.models) or None,
        )
    except ValueError as exc:
        print(f"relay sim: {exc}", file=sys.stderr)
        return 2
    serving = args.rest_port is not None or args.sip_port is not None
    summaries: list[dict[str, Any]] = []
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_boot(fleet, args, summaries.append, serve=serving))
    if not summaries:
        return 1
    summary = summaries[0]
    return 0 if summary["failed"] == 0 and summary["provisioned"] == summary["phones"] else 1


async def _boot(
    fleet: Fleet,
    args: argparse.Namespace,
    report: Callable[[dict[str, Any]], None],
    *,
    serve: bool,
) -> None:
    """Boot, print the summary, then, when serving, keep the phones up for --hold seconds."""
    async with fleet:
        ticker = asyncio.create_task(_progress(fleet)) if not args.json else None
        try:
            summary = await fleet.boot_all(timeout=args.timeout)
        finally:
            if ticker is not None:
                ticker.cancel()
                await asyncio.gather(ticker, return_exceptions=True)
        report(summary)
        if args.json:
            print(json.dumps(summary, sort_keys=True), flush=True)
        else:
            _print_summary(summary)
        if not serve:
            return
        if not args.json:
            print(_serving_line(fleet, args), flush=True)
        if args.hold is None:
            await asyncio.Event().wait()
        else:
            await asyncio.sleep(args.hold)


def _serving_line(fleet: Fleet, args: argparse.Namespace) -> str:
    first, last = fleet.phones[0].address, fleet.phones[-1].address
    parts = []
    if args.rest_port is not None:
        parts.append(f"REST on https://<address>:{args.rest_port}/api/v1/")
    if args.sip_port is not None:
        parts.append(f"SIP on udp <address>:{args.sip_port}")
    return f"serving {' and '.join(parts)} for addresses {first} to {last}; Ctrl-C to stop"


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
    if summary["boot_sources"]:
        found = ", ".join(f"{source} {count}" for source, count in summary["boot_sources"].items())
        print(f"servers found by: {found}")
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
