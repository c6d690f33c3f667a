"""The `relay` command.

relay up [--data-dir DIR] [--json] [--free-ports] [--log-format human|json]
relay token create --name NAME [--role admin|readonly] [--data-dir DIR] [--json]
relay agent register|run|status ...  (the management agent; see management_agent/cli.py)
relay images [--data-dir DIR] [--json] [--watch]  (the cached firmware; download_agent/cli.py)
relay certs check|lab-ca|status|install|rollback ...  (relay certificates; certs/cli.py)
relay version
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from certs import cli as certs_cli
from download_agent import cli as images_cli
from management_agent import cli as agent_cli
from relay import __version__
from relay.app import StartupError, run
from relay.config import Config, ConfigError, load_config
from relay.frontend.dhcpsetup import DhcpStartupError
from relay.logs import setup_logging
from relay.sim import cli as sim_cli


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data-dir", type=Path, help="state directory (default ~/.relay)")
    parser.add_argument("--config", type=Path, help="TOML configuration file")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument("--log-format", choices=("human", "json"), help="log line format")
    parser.add_argument("--log-level", help="DEBUG, INFO, WARNING or ERROR")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="relay", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="run the control plane and the relay's services")
    _common(up)
    up.add_argument(
        "--free-ports", action="store_true", help="bind every service to a free loopback port"
    )
    up.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    up.add_argument("--api-port", type=int, help="control plane API port (default 8480)")
    up.add_argument("--prov-port", type=int, help="phone provisioning HTTPS port (default 8443)")
    up.add_argument(
        "--prov-http", action="store_true", help="also serve phone provisioning over plain HTTP"
    )
    up.add_argument("--prov-http-port", type=int, help="plain HTTP port (default 8481)")
    up.add_argument(
        "--bind", help="address the relay's phone-facing listeners use (default: --host)"
    )
    up.add_argument("--relay-https-port", type=int, help="relay HTTPS for phones (default 9443)")
    up.add_argument("--relay-http", action="store_true", help="relay plain HTTP for phones too")
    up.add_argument("--relay-http-port", type=int, help="relay plain HTTP port (default 9480)")
    up.add_argument("--relay-ftp-port", type=int, help="relay FTP/FTPS port (default 2121)")
    up.add_argument("--relay-tftp-port", type=int, help="relay TFTP port (default 6969)")
    up.add_argument(
        "--trusted-proxy",
        action="append",
        dest="trusted_proxies",
        help="address of a relay whose X-Forwarded-For is believed (repeatable)",
    )
    up.add_argument(
        "--tls-name",
        action="append",
        dest="tls_names",
        help="extra DNS name for the lab certificate (repeatable)",
    )
    up.add_argument(
        "--no-agent",
        dest="agent",
        action="store_const",
        const=False,
        help="run the control plane without an embedded relay agent (relays register remotely)",
    )
    up.add_argument(
        "--heartbeat-seconds",
        type=float,
        help="how often relays send a heartbeat (default 120)",
    )
    up.add_argument(
        "--monitor-seconds",
        type=float,
        help="how often relays poll their phones for the device monitor (default 7200)",
    )
    up.add_argument(
        "--demo",
        type=int,
        metavar="N",
        help="also start N simulated phones and show them being provisioned",
    )
    up.add_argument(
        "--image-reserve-bytes",
        type=int,
        metavar="BYTES",
        help="disk the download agent never fills with images (default 1073741824)",
    )
    up.add_argument(
        "--image-rate-limit",
        type=int,
        metavar="BYTES/S",
        help="the download agent's WAN rate cap (default 0: unlimited)",
    )
    _dhcp_flags(up)
    token = sub.add_parser("token", help="manage API tokens offline")
    token_sub = token.add_subparsers(dest="action", required=True)
    create = token_sub.add_parser("create", help="create an API token and print it once")
    _common(create)
    create.add_argument("--name", required=True)
    create.add_argument("--role", choices=("admin", "readonly"), default="readonly")
    sim_cli.add_parser(sub)
    agent_cli.add_parser(sub)
    images_cli.add_parser(sub)
    certs_cli.add_parser(sub)
    sub.add_parser("version", help="print the version")
    return parser


def _dhcp_flags(up: argparse.ArgumentParser) -> None:
    """The DHCP server's flags (README "DHCP"); each is also a `dhcp_*` configuration key."""
    dhcp = up.add_argument_group("DHCP server (off unless --dhcp-interface is given)")
    dhcp.add_argument("--dhcp-interface", metavar="IFACE", help="serve DHCP on this interface")
    dhcp.add_argument(
        "--dhcp-mode",
        choices=("lease", "inform"),
        help="lease: hand out addresses; inform: answer phones' DHCPINFORM only",
    )
    dhcp.add_argument("--dhcp-pool", metavar="FIRST-LAST", help="dynamic address range")
    dhcp.add_argument("--dhcp-subnet", metavar="CIDR", help="default: the interface's subnet")
    dhcp.add_argument("--dhcp-lease-seconds", type=int, help="lease time (default 86400)")
    dhcp.add_argument("--dhcp-router", metavar="IP", help="option 3")
    dhcp.add_argument("--dhcp-dns", metavar="IP", action="append", help="option 6 (repeatable)")
    dhcp.add_argument("--dhcp-ntp", metavar="IP", action="append", help="option 42 (repeatable)")
    dhcp.add_argument("--dhcp-domain", help="option 15")
    dhcp.add_argument(
        "--dhcp-vlan", type=int, metavar="ID", help="send VLAN-A=ID; on the VLAN options"
    )
    dhcp.add_argument(
        "--dhcp-boot-url",
        metavar="URL",
        help="options 66/160/161 (default: this relay's provisioning URL and account)",
    )
    dhcp.add_argument(
        "--dhcp-reservation",
        metavar="MAC=IP",
        action="append",
        dest="dhcp_reservations",
        help="a fixed address for one MAC (repeatable)",
    )
    dhcp.add_argument("--dhcp-port", type=int, help="UDP port to serve (default 67)")


def _config(args: argparse.Namespace) -> Config:
    flags: dict[str, Any] = {
        "data_dir": args.data_dir,
        "log_format": args.log_format,
        "log_level": args.log_level,
    }
    for name in (
        "free_ports",
        "host",
        "api_port",
        "prov_port",
        "prov_http",
        "prov_http_port",
        "trusted_proxies",
        "tls_names",
        "demo",
        "heartbeat_seconds",
        "monitor_seconds",
        "dhcp_interface",
        "dhcp_mode",
        "dhcp_pool",
        "dhcp_subnet",
        "dhcp_lease_seconds",
        "dhcp_router",
        "dhcp_dns",
        "dhcp_ntp",
        "dhcp_domain",
        "dhcp_vlan",
        "dhcp_boot_url",
        "dhcp_reservations",
        "dhcp_port",
        "bind",
        "relay_https_port",
        "relay_http",
        "relay_http_port",
        "relay_ftp_port",
        "relay_tftp_port",
        "image_reserve_bytes",
        "image_rate_limit",
    ):
        if getattr(args, name, None) not in (None, False):
            flags[name] = getattr(args, name)
    if getattr(args, "agent", None) is False:
        flags["agent"] = False
    return load_config(flags, config_file=args.config)


def _print_event(facts: dict[str, Any]) -> None:
    """What a person sees: the ready banner, then demo progress."""
    if facts["event"] == "demo_progress":
        print(
            f"demo: {facts.get('provisioned', 0)} provisioned, {facts.get('booting', 0)} booting, "
            f"{facts.get('failed', 0)} failed of {facts['phones']}",
            flush=True,
        )
        return
    if facts["event"] == "demo":
        failed = f", {facts['failed']} failed" if facts.get("failed") else ""
        print(
            f"demo: {facts['provisioned']} of {facts['phones']} simulated phones provisioned"
            + failed,
            flush=True,
        )
        return
    token_hint = f"$(cat {facts['token_file']})"
    account = (
        f"{facts['prov_user']} / {facts['prov_password']}"
        if facts.get("prov_password")
        else f"{facts['prov_user']} (password changed since it was generated)"
    )
    print(
        "relay is up\n"
        f"  control plane API  {facts['api']}\n"
        f"  OpenAPI            {facts['openapi']}\n"
        f"  admin token        {facts['token_file']} (mode 0600)\n"
        f"  phone provisioning {facts['provisioning']}\n"
        f"  phone account      {account}\n"
        f"  lab CA certificate {facts['ca_cert']}\n"
        f"  tenant             {facts['tenant']}\n"
        f"  relay PIN          {facts['pin']} (relay agent register --tenant ... --pin ...)\n"
        + (
            f"  embedded relay     {facts['relay_id']} (relay agent status)\n"
            if facts.get("relay_id")
            else "  embedded relay     off (--no-agent)\n"
        )
        + f"  data directory     {facts['data_dir']}\n"
        f'try:  curl -H "Authorization: Bearer {token_hint}" {facts["api"]}/sites\n'
        "Press Ctrl-C to stop.",
        flush=True,
    )


async def _up(config: Config, as_json: bool) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    def ready(facts: dict[str, Any]) -> None:
        if as_json:
            if facts["event"] != "demo_progress":
                print(json.dumps(facts), flush=True)
        else:
            _print_event(facts)

    async def stopped() -> None:
        await stop.wait()

    await run(config, ready, stopped)


def _token_create(config: Config, args: argparse.Namespace) -> int:
    from relay.cloud.controlplane import ControlPlane

    plane = ControlPlane(config.data_dir / "cloud")
    try:
        plane.bootstrap()
        token, row = plane.tenancy.create_token({"name": args.name, "role": args.role}, "cli")
    finally:
        plane.close()
    print(json.dumps({**row, "token": token}) if args.json else token)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "version":
        print(__version__)
        return 0
    if args.command == "sim":
        return sim_cli.run(args)
    if args.command == "agent":
        return agent_cli.run(args)
    if args.command == "images":
        return images_cli.main(args)
    if args.command == "certs":
        return certs_cli.main(args)
    try:
        config = _config(args)
    except ConfigError as exc:
        print(f"relay: {exc}", file=sys.stderr)
        return 2
    setup_logging(config.log_format, config.log_level)
    try:
        if args.command == "token":
            return _token_create(config, args)
        asyncio.run(_up(config, args.json))
    except (StartupError, DhcpStartupError) as exc:
        print(f"relay: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # the rules' own errors, e.g. a bad token name
        from relay.cloud.rules.errors import RuleError

        if isinstance(exc, RuleError):
            print(f"relay: {exc.message}", file=sys.stderr)
            return 2
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main())
