"""Turning the DHCP server on from the configuration (`relay up --dhcp-interface IFACE ...`).

`dhcp_settings` is pure: from the `dhcp_*` keys, the boot URL and the
interface's address it builds what the server runs on, a `LeaseConfig`
(lease mode) or an `InformResponder` (inform mode). `start_dhcp` does the
rest: it reads the interface's address, opens the lease log and starts a
`DhcpServer`, and turns every way that can fail into a `DhcpStartupError`
that says what to do.

Decisions:
- the boot URL (by default the relay's own provisioning URL with the
  tenant's provisioning account, phones.md section 1) goes as it is into
  160 and 161, which only phones read; option 66 gets it without the
  `user:password@`, since any host on the LAN may ask for 66 (TFTP boot);
- a boot URL whose host is the wildcard 0.0.0.0 gets the interface's
  address instead: that is where phones on that link reach the relay;
- without `dhcp_subnet`, the pool's subnet is the interface's own, and the
  server identifier (option 54) is always the interface's address
  (RFC 2131 section 4.3.1: an address of the server reachable by the client);
- the lease log is `<data-dir>/dhcp/leases.sqlite` (directory mode 0700),
  written as durably as `dhcp_durability` says (relay/frontend/leasestore.py).
"""

from __future__ import annotations

import errno
import fcntl
import logging
import socket
import sqlite3
import struct
from ipaddress import IPv4Address, IPv4Interface, IPv4Network
from pathlib import Path
from urllib.parse import urlsplit

from relay.config import Config, ConfigError
from relay.frontend.dhcp import DhcpPrivilegeError, DhcpServer, Mode
from relay.frontend.leasestore import LeaseStore, LeaseStoreError, durability_level
from relay.logs import event
from relay.proto.dhcp.inform import InformResponder
from relay.proto.dhcp.leases import LeaseConfig, Pool
from relay.proto.dhcp.options import BootOptions
from relay.proto.dhcp.packet import DhcpError
from relay.proto.dhcp.settings import (
    check_url,
    parse_address,
    parse_range,
    parse_reservation,
    with_host,
    without_credentials,
)

log = logging.getLogger("relay.dhcp")

LEASE_FILE = Path("dhcp") / "leases.sqlite"
# netdevice(7): the interface's address and netmask, readable without privilege.
_SIOCGIFADDR = 0x8915
_SIOCGIFNETMASK = 0x891B
_IFREQ = struct.Struct("16s240x")
_CAPABILITY_HINT = (
    "run relay as root, or give it the capabilities: "
    "AmbientCapabilities=CAP_NET_BIND_SERVICE CAP_NET_RAW in its systemd unit, "
    "or setcap cap_net_bind_service,cap_net_raw+ep on the Python it runs on"
)


class DhcpStartupError(RuntimeError):
    """The DHCP server could not start; the message says what to do."""


def interface_address(name: str) -> IPv4Interface:
    """The (primary) IPv4 address and prefix of interface `name`."""
    request = _IFREQ.pack(name.encode()[:15])
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            address = fcntl.ioctl(sock.fileno(), _SIOCGIFADDR, request)[20:24]
            mask = fcntl.ioctl(sock.fileno(), _SIOCGIFNETMASK, request)[20:24]
        except OSError as exc:
            if exc.errno == errno.ENODEV:
                raise DhcpStartupError(f"DHCP: there is no network interface {name!r}") from exc
            if exc.errno == errno.EADDRNOTAVAIL:
                raise DhcpStartupError(
                    f"DHCP: interface {name} has no IPv4 address; give it one in the subnet "
                    "it serves (the server identifier, option 54, is that address)"
                ) from exc
            raise
    return IPv4Interface(f"{IPv4Address(address)}/{IPv4Address(mask)}")


def dhcp_settings(
    config: Config, boot_url: str, address: IPv4Interface
) -> LeaseConfig | InformResponder:
    """What the server runs on the interface whose address is `address`.

    `boot_url` is the relay's own provisioning URL with the tenant's
    account; `dhcp_boot_url`, when set, replaces it. Raises ConfigError.
    """
    try:
        return _settings(config, boot_url, address)
    except DhcpError as exc:
        raise ConfigError(f"DHCP: {exc}") from exc


def _settings(
    config: Config, boot_url: str, address: IPv4Interface
) -> LeaseConfig | InformResponder:
    url = check_url(config.dhcp_boot_url or boot_url, "the boot URL")
    host = urlsplit(url).hostname
    if host == "0.0.0.0":  # noqa: S104 - the wildcard is not an address phones can reach
        url = with_host(url, address.ip)
    boot = BootOptions(
        option66=without_credentials(url),
        option160=url,
        option161=url,
        vlan_id=config.dhcp_vlan or None,
        vlan_options=config.dhcp_vlan_options if config.dhcp_vlan else (),
        routers=tuple(parse_address(a, "dhcp_router") for a in [config.dhcp_router] if a),
        dns=tuple(parse_address(a, "dhcp_dns") for a in config.dhcp_dns),
        ntp=tuple(parse_address(a, "dhcp_ntp") for a in config.dhcp_ntp),
        domain=config.dhcp_domain or None,
        forced=config.dhcp_force_options,
    )
    if config.dhcp_mode == "inform":
        return InformResponder(address.ip, boot)
    subnet = address.network
    if config.dhcp_subnet:
        try:
            subnet = IPv4Network(config.dhcp_subnet, strict=False)
        except ValueError as exc:
            raise DhcpError(f"dhcp_subnet {config.dhcp_subnet[:40]!r} is not a CIDR") from exc
    first, last = parse_range(config.dhcp_pool)
    pool = Pool(
        subnet,
        first,
        last,
        lease_seconds=config.dhcp_lease_seconds,
        boot=boot,
        reservations=tuple(parse_reservation(text) for text in config.dhcp_reservations),
    )
    return LeaseConfig(address.ip, (pool,))


async def start_dhcp(config: Config, boot_url: str, data_dir: Path) -> DhcpServer:
    """Start the DHCP server `config` describes; close it with `await server.close()`.

    Raises DhcpStartupError, naming the missing capability, the unknown
    interface or the setting at fault.
    """
    name = config.dhcp_interface
    address = interface_address(name)
    try:
        settings = dhcp_settings(config, boot_url, address)
    except ConfigError as exc:
        raise DhcpStartupError(f"{exc} (interface {name} is {address})") from exc
    host = urlsplit(config.dhcp_boot_url or boot_url).hostname or ""
    if _is_loopback(host):
        event(
            log,
            "dhcp_boot_url_unreachable",
            logging.WARNING,
            interface=name,
            host=host,
            hint="phones cannot reach a loopback address: serve provisioning on an address "
            "of the interface (relay up --bind) or set dhcp_boot_url",
        )
    mode: Mode = "lease" if isinstance(settings, LeaseConfig) else "inform"
    store = _open_store(data_dir, config.dhcp_durability) if mode == "lease" else None
    server = DhcpServer(name, mode, settings, store, port=config.dhcp_port, owns_store=True)
    try:
        await server.start()
    except DhcpPrivilegeError as exc:
        await server.close()
        raise DhcpStartupError(f"DHCP on {name}: {exc.strerror}; {_CAPABILITY_HINT}") from exc
    except (OSError, sqlite3.Error, LeaseStoreError) as exc:
        await server.close()
        raise DhcpStartupError(f"DHCP on {name}: {exc}") from exc
    except BaseException:
        await server.close()
        raise
    return server


def _open_store(data_dir: Path, durability: str) -> LeaseStore:
    path = data_dir / LEASE_FILE
    try:
        level = durability_level(durability)
    except ValueError as exc:
        raise DhcpStartupError(f"DHCP: {exc}") from exc
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        return LeaseStore(path, durability=level)
    except (OSError, sqlite3.Error) as exc:
        raise DhcpStartupError(f"DHCP: cannot open the lease log {path}: {exc}") from exc


def _is_loopback(host: str) -> bool:
    try:
        return host == "localhost" or IPv4Address(host).is_loopback
    except ValueError:
        return False
