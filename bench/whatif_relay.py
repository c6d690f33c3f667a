"""What-if wrapper around the relay CLI, for bench_provisioning.py --relay-up-cmd.

Runs `relay ...` with candidate fixes patched in at run time (relay/ itself is not
changed), each switched on by an environment variable:

    WHATIF_INLINE=1    CloudWorker.call runs the function inline on the event loop
                       (no hop to the store thread and back)
    WHATIF_SSLBUF=N    asyncio.sslproto.SSLProtocol.max_size = N bytes: the read buffer
                       every TLS connection allocates (asyncio's default is 256 KiB)
    WHATIF_BACKLOG=N   listen backlog N for every aiohttp TCPSite (aiohttp's default: 128)
    WHATIF_UVLOOP=1    uvloop's event loop (not a project dependency: install it apart,
                       e.g. pip install --target /tmp/uvonly uvloop; PYTHONPATH=/tmp/uvonly)

    WHATIF_INLINE=1 WHATIF_BACKLOG=4096 .venv/bin/python bench/bench_provisioning.py \\
        --relay-up-cmd ".venv/bin/python bench/whatif_relay.py"

Measurement only: inline store calls block the event loop while SQLite works, which
is fine for cached files on loopback and not a design to ship as is.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any


def apply() -> list[str]:
    """Patch in what the environment asks for; returns what was applied."""
    applied: list[str] = []
    if os.environ.get("WHATIF_INLINE") == "1":
        import relay.cloud.controlplane as controlplane

        async def call(
            self: controlplane.CloudWorker, fn: Callable[..., Any], *args: Any, **kwargs: Any
        ) -> Any:
            return fn(*args, **kwargs)

        controlplane.CloudWorker.call = call  # type: ignore[method-assign]
        applied.append("inline worker calls")
    if os.environ.get("WHATIF_SSLBUF"):
        import asyncio.sslproto

        size = int(os.environ["WHATIF_SSLBUF"])
        asyncio.sslproto.SSLProtocol.max_size = size
        applied.append(f"TLS read buffer {size} B")
    if os.environ.get("WHATIF_BACKLOG"):
        from aiohttp import web

        backlog = int(os.environ["WHATIF_BACKLOG"])
        original = web.TCPSite.__init__

        def init(self: web.TCPSite, *args: Any, **kwargs: Any) -> None:
            kwargs["backlog"] = backlog
            original(self, *args, **kwargs)

        web.TCPSite.__init__ = init  # type: ignore[method-assign]
        applied.append(f"listen backlog {backlog}")
    if os.environ.get("WHATIF_UVLOOP") == "1":
        import uvloop  # type: ignore[import-not-found]

        uvloop.install()
        applied.append("uvloop")
    return applied


def main() -> int:
    applied = apply()
    print(f"whatif_relay: {', '.join(applied) or 'nothing patched'}", file=sys.stderr)
    from relay.cli import main as relay_main

    return relay_main(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
