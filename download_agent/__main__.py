"""`python -m download_agent --data-dir DIR`: the download agent as its own process
(architecture.md: one process and one systemd unit per agent).

It uses the management agent's credential (`DIR/agent/credential.json`, where
`relay up` and `relay agent register` keep it) and keeps images in `DIR/images`.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from download_agent.link import CloudImages
from download_agent.settings import GIB, DownloadSettings
from download_agent.syncer import DownloadAgent
from management_agent.agent import CREDENTIAL_FILE, cloud_tls
from management_agent.link import Identity
from relay.logs import setup_logging

AGENT_DIR = "agent"


def _count(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError("must be 0 or more")
    return value


def _seconds(text: str) -> float:
    value = float(text)
    if not 0 < value <= 3600:
        raise argparse.ArgumentTypeError("must be more than 0 and at most 3600")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m download_agent",
        description="Keep the relay's firmware images in sync with the cloud's image set.",
    )
    parser.add_argument("--data-dir", type=Path, required=True, help="the relay's data dir")
    parser.add_argument(
        "--credential",
        type=Path,
        help=f"the relay's credential (default DATA_DIR/{AGENT_DIR}/{CREDENTIAL_FILE})",
    )
    parser.add_argument("--cloud-ca", type=Path, help="CA bundle for an https cloud")
    parser.add_argument(
        "--reserve", type=_count, default=GIB, help="bytes of disk never filled (default 1 GiB)"
    )
    parser.add_argument(
        "--rate-limit", type=_count, default=0, help="WAN bytes/s at most (default 0: unlimited)"
    )
    parser.add_argument(
        "--stall-seconds", type=_seconds, default=30.0, help="no data this long is a stall"
    )
    parser.add_argument("--log-format", choices=("human", "json"), default="human")
    return parser


async def _serve(identity: Identity, credential: Path, settings: DownloadSettings) -> None:
    source = CloudImages(identity, cloud_tls(identity, settings.cloud_ca), credential)
    task = asyncio.create_task(DownloadAgent(source, settings).run())
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, task.cancel)
    try:
        await task
    except asyncio.CancelledError:
        if task.cancelled():
            return
        raise
    finally:
        await source.aclose()


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    setup_logging(args.log_format)
    credential = args.credential or args.data_dir / AGENT_DIR / CREDENTIAL_FILE
    try:
        identity = Identity.load(credential)
    except ValueError as exc:
        print(f"download agent: {exc}", file=sys.stderr)
        return 2
    if identity is None:
        print(
            f"download agent: no credential at {credential}; register the relay first "
            "(`relay agent register`) or pass --credential",
            file=sys.stderr,
        )
        return 2
    settings = DownloadSettings(
        data_dir=args.data_dir,
        reserve_bytes=args.reserve,
        rate_limit=args.rate_limit,
        stall_seconds=args.stall_seconds,
        cloud_ca=args.cloud_ca,
    )
    asyncio.run(_serve(identity, credential, settings))
    return 0


if __name__ == "__main__":
    sys.exit(main())
