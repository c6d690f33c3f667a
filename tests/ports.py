"""A port nothing listens on right now, on a loopback address, for every test package."""

from __future__ import annotations

import socket


def free_port(kind: int = socket.SOCK_STREAM, host: str = "127.0.0.1") -> int:
    """A TCP (or, with SOCK_DGRAM, UDP) port free on `host` at the moment."""
    with socket.socket(socket.AF_INET, kind) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])
