"""A throw-away network namespace joined to the root namespace by a veth pair.

The DHCP server runs in the test process on the root-side end; real DHCP
clients run inside the namespace (`ip netns exec`), so broadcasts cross a
real Ethernet link without touching any network of the host. Addresses come
from 203.0.113.0/24 (TEST-NET-3, RFC 5737; 192.0.2.0/24 is this machine's own
network here, and a veth there would shadow its gateway). Everything created is deleted
again, also when the setup itself fails half-way.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

HOST_ADDRESS = "203.0.113.1"
PREFIX = 24


@dataclass(frozen=True, slots=True)
class Link:
    """The namespace `name`; `host_if` is the root-side veth end, `ns_if` the end inside."""

    name: str
    host_if: str
    ns_if: str

    def command(self, *argv: str) -> list[str]:
        """`argv` run inside the namespace."""
        return ["ip", "netns", "exec", self.name, *argv]


def unavailable() -> str | None:
    """Why namespace tests cannot run here, or None when they can."""
    if os.geteuid() != 0:
        return "network namespace tests need root (ip netns add, veth pairs)"
    if shutil.which("ip") is None:
        return "network namespace tests need the ip command (package iproute2)"
    probe = subprocess.run(["ip", "netns", "list"], capture_output=True, check=False)
    if probe.returncode != 0:
        return f"ip netns is unavailable: {probe.stderr.decode(errors='replace').strip()}"
    return None


def _ip(*argv: str) -> None:
    subprocess.run(["ip", *argv], check=True, capture_output=True, timeout=10)


@contextmanager
def veth_namespace(ns_mac: str | None = None) -> Iterator[Link]:
    """Create `relaytest-<random>` and a veth pair, the root end at 203.0.113.1/24, both up.

    `ns_mac` sets the Ethernet address of the end inside the namespace (the
    client's chaddr).
    """
    tag = secrets.token_hex(4)
    # Interface names are at most 15 characters (IFNAMSIZ - 1).
    link = Link(name=f"relaytest-{tag}", host_if=f"rth{tag}", ns_if=f"rtn{tag}")
    _ip("netns", "add", link.name)
    try:
        peer = ["peer", "name", link.ns_if]
        if ns_mac is not None:
            peer += ["address", ns_mac]
        _ip("link", "add", link.host_if, "type", "veth", *peer, "netns", link.name)
        try:
            _ip("addr", "add", f"{HOST_ADDRESS}/{PREFIX}", "dev", link.host_if)
            _ip("link", "set", link.host_if, "up")
            _ip("-n", link.name, "link", "set", "lo", "up")
            _ip("-n", link.name, "link", "set", link.ns_if, "up")
            yield link
        finally:
            # Deleting one end of a veth pair deletes both.
            subprocess.run(["ip", "link", "del", link.host_if], capture_output=True, check=False)
    finally:
        subprocess.run(["ip", "netns", "del", link.name], capture_output=True, check=False)
