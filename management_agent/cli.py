"""`relay agent ...`: register a standalone management agent, run it, show its state.

relay agent register --cloud URL --tenant T --pin P [--data-dir DIR] [--ca-cert FILE]
relay agent run [--data-dir DIR] [--phone-port N] [--sip-port N] [--concurrency N]
relay agent status [--data-dir DIR] [--json]

The agent keeps its files in `<data-dir>/agent/` (credential 0600, queues,
status), the same place `relay up` uses for its embedded agent, so `status`
works for both.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import signal
import socket
import sys
import time
from pathlib import Path
from typing import Any

from certs.lab import CertError
from management_agent.agent import (
    CREDENTIAL_FILE,
    DATABASE_FILE,
    STATUS_FILE,
    Agent,
    AgentSettings,
    cloud_tls,
    own_address,
)
from management_agent.link import Identity, LinkDown, Refused, Revoked, api_base, register
from management_agent.store import AgentStore
from relay import __version__
from relay.logs import setup_logging
from relay.sync.messages import Registration


def agent_dir(data_dir: Path | None) -> Path:
    return (data_dir or Path.home() / ".relay").expanduser() / "agent"


def add_parser(subparsers: Any) -> None:
    agent = subparsers.add_parser("agent", help="the management agent (registration, status)")
    sub = agent.add_subparsers(dest="action", required=True)
    reg = sub.add_parser("register", help="register this relay with a cloud using its PIN")
    _common(reg)
    reg.add_argument("--cloud", required=True, help="the cloud's address, e.g. https://host:8480")
    reg.add_argument("--tenant", required=True, help="the tenant ID the cloud shows")
    reg.add_argument("--pin", required=True, help="the PIN the cloud shows")
    reg.add_argument("--name", default=socket.gethostname(), help="a name for this relay")
    reg.add_argument("--ca-cert", type=Path, help="CA certificate of an https cloud")
    run = sub.add_parser("run", help="run a registered agent until stopped")
    _common(run)
    run.add_argument("--ca-cert", type=Path, help="CA certificate of an https cloud")
    run.add_argument("--phone-port", type=int, default=443, help="phones' REST API port")
    run.add_argument("--sip-port", type=int, default=5060, help="phones' SIP port")
    run.add_argument(
        "--concurrency", type=int, default=32, help="phones talked to at once (default 32)"
    )
    run.add_argument("--heartbeat-seconds", type=float, help="override the cloud's interval")
    run.add_argument("--monitor-seconds", type=float, help="override the cloud's interval")
    status = sub.add_parser("status", help="the link, last heartbeat and queue sizes")
    _common(status)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", type=Path, help="state directory (default ~/.relay)")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument("--log-format", choices=("human", "json"), default="human")
    parser.add_argument("--log-level", default="INFO")


def run(args: argparse.Namespace) -> int:
    setup_logging(args.log_format, args.log_level)
    action = {"register": _register, "run": _run, "status": _status}[args.action]
    return action(args)


def _out(args: argparse.Namespace, value: dict[str, Any], text: str) -> None:
    print(json.dumps(value) if args.json else text)


def _fail(args: argparse.Namespace, message: str, code: int = 1) -> int:
    if args.json:
        print(json.dumps({"error": message}))
    else:
        print(f"relay agent: {message}", file=sys.stderr)
    return code


def _register(args: argparse.Namespace) -> int:
    directory = agent_dir(args.data_dir)
    try:
        api_base(args.cloud)
    except ValueError as exc:
        return _fail(args, str(exc), 2)
    registration = Registration(
        tenant=args.tenant,
        pin=args.pin,
        name=args.name,
        version=__version__,
        addresses=(own_address(args.cloud),),
    )
    probe = Identity(args.cloud, args.tenant, "", "")
    try:
        identity = asyncio.run(register(args.cloud, registration, cloud_tls(probe, args.ca_cert)))
    except Refused as exc:
        hint = f"; try again in {exc.retry_after:.0f} s" if exc.retry_after else ""
        return _fail(args, f"registration refused: {exc}{hint}")
    except LinkDown as exc:
        return _fail(args, f"{exc}; check the address and that the cloud is running")
    except CertError as exc:
        return _fail(args, str(exc), 2)
    identity.save(directory / CREDENTIAL_FILE)
    _out(
        args,
        {"relay_id": identity.relay_id, "cloud": identity.cloud, "data_dir": str(directory)},
        f"registered as relay {identity.relay_id}; credential in {directory / CREDENTIAL_FILE}\n"
        f"start it with: relay agent run --data-dir {directory.parent}",
    )
    return 0


def _run(args: argparse.Namespace) -> int:
    directory = agent_dir(args.data_dir)
    try:
        identity = Identity.load(directory / CREDENTIAL_FILE)
    except ValueError as exc:
        return _fail(args, str(exc))
    if identity is None:
        return _fail(
            args, "not registered; run: relay agent register --cloud URL --tenant T --pin P"
        )
    settings = AgentSettings(
        data_dir=directory,
        phone_port=args.phone_port,
        sip_port=args.sip_port,
        concurrency=args.concurrency,
        heartbeat_seconds=args.heartbeat_seconds,
        monitor_seconds=args.monitor_seconds,
        cloud_ca=args.ca_cert,
    )

    async def main() -> None:
        loop = asyncio.get_running_loop()
        task = asyncio.create_task(Agent(identity, settings).run())
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, task.cancel)
        with contextlib.suppress(asyncio.CancelledError):
            await task

    try:
        asyncio.run(main())
    except Revoked as exc:
        return _fail(args, f"{exc}; the relay was removed from the cloud: register it again")
    return 0


def _iso(value: object) -> str | None:
    if not isinstance(value, (int, float)):
        return None
    return dt.datetime.fromtimestamp(value, dt.UTC).isoformat(timespec="seconds")


def _status(args: argparse.Namespace) -> int:
    directory = agent_dir(args.data_dir)
    identity = Identity.load(directory / CREDENTIAL_FILE) if directory.exists() else None
    if identity is None:
        return _fail(args, f"no agent is registered in {directory}", 3)
    try:
        state = json.loads((directory / STATUS_FILE).read_text())
    except (FileNotFoundError, ValueError):
        state = {"link": "never started"}
    store = AgentStore(directory / DATABASE_FILE)
    try:
        sizes = store.sizes()
    finally:
        store.close()
    written = state.get("written")
    fresh = isinstance(written, (int, float)) and time.time() - written < 3 * float(
        state.get("heartbeat_seconds", 120)
    )
    value = {
        "relay_id": identity.relay_id,
        "cloud": identity.cloud,
        "tenant": identity.tenant,
        "link": state.get("link") if fresh else "not running",
        "link_error": state.get("link_error"),
        "last_heartbeat": _iso(state.get("last_heartbeat")),
        "site": state.get("site"),
        "last_monitor": _iso(state.get("last_monitor")),
        "monitored_devices": state.get("monitored_devices", 0),
        "jobs_done": state.get("jobs_done", 0),
        "pending_jobs": sizes.pending_jobs,
        "running_jobs": sizes.running_jobs,
        "queued_reports": sizes.reports,
        "job_cursor": sizes.cursor,
    }
    text = "\n".join(f"{k:>18}: {'-' if v is None else v}" for k, v in value.items())
    _out(args, value, text)
    return 0
