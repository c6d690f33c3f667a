"""One frozen, typed configuration for every service of the appliance.

Sources, lowest precedence first: built-in defaults, a TOML file
(`--config FILE`, else `<data-dir>/relay.toml` if present), environment
variables `RELAY_<FIELD>` (upper case), then command-line flags. Unknown keys
are errors, so a typo in a file never silently does nothing.
"""

from __future__ import annotations

import dataclasses
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from ipaddress import IPv4Network
from pathlib import Path
from typing import Any

from relay.proto.dhcp.leases import Pool
from relay.proto.dhcp.options import VLAN_OPTIONS, BootOptions
from relay.proto.dhcp.packet import DhcpError
from relay.proto.dhcp.settings import check_url, parse_address, parse_range, parse_reservation

DEFAULT_API_PORT = 8480
DEFAULT_PROV_PORT = 8443
DEFAULT_PROV_HTTP_PORT = 8481
# Unprivileged stand-ins for 443, 80, 21 and 69 (pass those when the process may bind them).
DEFAULT_RELAY_HTTPS_PORT = 9443
DEFAULT_RELAY_HTTP_PORT = 9480
DEFAULT_RELAY_FTP_PORT = 2121
DEFAULT_RELAY_TFTP_PORT = 6969


# phones.md section 1: VLAN discovery reads 128, 144, 157, 191 (Trio: 129). They are
# sent only to clients that ask for them in option 55, unless forced.
DHCP_VLAN_OPTIONS = (128, 129, 144, 157, 191)
# Linux interface names: at most 15 bytes (IFNAMSIZ - 1), no slash, colon or white space.
_IFNAME = re.compile(r"[^/:\s]{1,15}")


class ConfigError(ValueError):
    """A configuration value is missing, unknown or malformed; the message says which."""


@dataclass(frozen=True, slots=True)
class Config:
    """Everything a service needs to know to start."""

    data_dir: Path = dataclasses.field(default_factory=lambda: Path.home() / ".relay")
    host: str = "127.0.0.1"
    api_port: int = DEFAULT_API_PORT
    free_ports: bool = False
    log_format: str = "human"
    log_level: str = "INFO"
    max_body_bytes: int = 20 * 1024 * 1024
    prov_port: int = DEFAULT_PROV_PORT
    prov_http: bool = False
    prov_http_port: int = DEFAULT_PROV_HTTP_PORT
    trusted_proxies: tuple[str, ...] = ()
    tls_names: tuple[str, ...] = ()
    demo: int = 0
    heartbeat_seconds: float = 120.0
    monitor_seconds: float = 7200.0
    phone_rest_port: int = 443
    phone_sip_port: int = 5060
    agent_concurrency: int = 32
    agent: bool = True
    # The relay's phone-facing listeners (issue 5); `bind` empty = `host`.
    bind: str = ""
    relay_https_port: int = DEFAULT_RELAY_HTTPS_PORT
    relay_http: bool = False
    relay_http_port: int = DEFAULT_RELAY_HTTP_PORT
    relay_ftp_port: int = DEFAULT_RELAY_FTP_PORT
    relay_tftp_port: int = DEFAULT_RELAY_TFTP_PORT
    # How often the relay refreshes its copy of the ZTP directory (a 304 when unchanged).
    ztp_sync_seconds: float = 60.0
    # The download agent (issue 6): disk never filled by images, and its WAN rate cap
    # in bytes/s (0 = unlimited).
    image_reserve_bytes: int = 2**30
    image_rate_limit: int = 0

    @property
    def bind_address(self) -> str:
        """Where the relay's phone-facing listeners bind."""
        return self.bind or self.host

    # The DHCP server on one interface (issue 5; README "DHCP"); no interface = off.
    dhcp_interface: str = ""
    dhcp_mode: str = "lease"
    dhcp_pool: str = ""
    dhcp_subnet: str = ""
    dhcp_lease_seconds: int = 86_400
    dhcp_router: str = ""
    dhcp_dns: tuple[str, ...] = ()
    dhcp_ntp: tuple[str, ...] = ()
    dhcp_domain: str = ""
    dhcp_vlan: int = 0
    dhcp_vlan_options: tuple[int, ...] = DHCP_VLAN_OPTIONS
    dhcp_force_options: tuple[int, ...] = ()
    dhcp_boot_url: str = ""
    dhcp_reservations: tuple[str, ...] = ()
    dhcp_port: int = 67
    # "fsync": a granted lease survives a power cut; "process": only a process crash
    # (relay/frontend/leasestore.py says why "fsync" is the default).
    dhcp_durability: str = "fsync"

    def port(self, default: int) -> int:
        """The port to bind: 0 (the kernel picks a free one) under --free-ports."""
        return 0 if self.free_ports else default


_FIELDS = {f.name: f for f in dataclasses.fields(Config)}


def _coerce(name: str, raw: object) -> object:
    kind = _FIELDS[name].type
    if name == "dhcp_reservations" and isinstance(raw, dict):
        # A TOML table `[dhcp_reservations]` of "MAC" = "IP" lines.
        raw = [f"{mac}={ip}" for mac, ip in raw.items()]
    try:
        if kind == "Path":
            return Path(str(raw)).expanduser()
        if kind == "int":
            if isinstance(raw, bool):
                raise TypeError
            return int(str(raw))
        if kind == "tuple[str, ...]":
            items = raw.split(",") if isinstance(raw, str) else raw
            if not isinstance(items, list | tuple) or not all(isinstance(i, str) for i in items):
                raise TypeError(raw)
            return tuple(i.strip() for i in items if i.strip())
        if kind == "tuple[int, ...]":
            items = raw.split(",") if isinstance(raw, str) else raw
            if not isinstance(items, list | tuple) or any(isinstance(i, bool) for i in items):
                raise TypeError(raw)
            return tuple(int(str(i).strip()) for i in items if str(i).strip())
        if kind == "float":
            if isinstance(raw, bool):
                raise TypeError
            return float(str(raw))
        if kind == "bool":
            if isinstance(raw, bool):
                return raw
            text = str(raw).strip().lower()
            if text in {"1", "true", "yes", "on"}:
                return True
            if text in {"0", "false", "no", "off"}:
                return False
            raise ValueError(text)
        if not isinstance(raw, str):
            raise TypeError(raw)
        return raw
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"configuration key {name!r}: {raw!r} is not a valid {kind}") from exc


def _validated(values: Mapping[str, object], source: str) -> dict[str, object]:
    out: dict[str, object] = {}
    for key, raw in values.items():
        name = key.replace("-", "_")
        if name not in _FIELDS:
            known = ", ".join(sorted(_FIELDS))
            raise ConfigError(f"{source}: unknown configuration key {key!r} (known: {known})")
        out[name] = _coerce(name, raw)
    return out


def _from_env(env: Mapping[str, str]) -> dict[str, object]:
    """RELAY_<KEY> variables; an unknown RELAY_ variable is an error, like a typo in a file."""
    picked = {k.removeprefix("RELAY_").lower(): v for k, v in env.items() if k.startswith("RELAY_")}
    return _validated(picked, "environment (RELAY_* variables)")


def _from_file(path: Path) -> dict[str, object]:
    try:
        with path.open("rb") as fh:
            data: dict[str, Any] = tomllib.load(fh)
    except OSError as exc:
        raise ConfigError(f"cannot read configuration file {path}: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"configuration file {path} is not valid TOML: {exc}") from exc
    return _validated(data, str(path))


def load_config(
    flags: Mapping[str, object],
    *,
    config_file: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> Config:
    """Merge defaults < file < environment < flags (flags given as None are ignored)."""
    env = os.environ if env is None else env
    given = _validated({k: v for k, v in flags.items() if v is not None}, "command line")
    from_env = _from_env(env)
    data_dir = given.get("data_dir") or from_env.get("data_dir") or Config().data_dir
    assert isinstance(data_dir, Path)
    if config_file is None and (data_dir / "relay.toml").is_file():
        config_file = data_dir / "relay.toml"
    merged: dict[str, object] = {}
    if config_file is not None:
        merged.update(_from_file(config_file))
    merged.update(from_env)
    merged.update(given)
    config = Config(**merged)  # type: ignore[arg-type]
    if config.log_format not in {"human", "json"}:
        raise ConfigError(f"log_format must be 'human' or 'json', not {config.log_format!r}")
    if config.log_level.upper() not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
        raise ConfigError(
            f"log_level must be DEBUG, INFO, WARNING or ERROR, not {config.log_level!r}"
        )
    for name in (
        "api_port",
        "prov_port",
        "prov_http_port",
        "phone_rest_port",
        "phone_sip_port",
        "relay_https_port",
        "relay_http_port",
        "relay_ftp_port",
        "relay_tftp_port",
    ):
        if not 0 <= getattr(config, name) <= 65535:
            raise ConfigError(f"{name} {getattr(config, name)} is outside 0-65535")
    if not 0 <= config.demo <= 5000:
        raise ConfigError(f"demo takes 0-5000 phones, not {config.demo}")
    # cloud.md: heartbeats every 2 minutes, Inactive after 10 without one.
    if not 1.0 <= config.heartbeat_seconds <= 300.0:
        raise ConfigError(
            f"heartbeat_seconds must be 1-300 (relays turn Inactive after 600 s without one), "
            f"not {config.heartbeat_seconds}"
        )
    if not 1.0 <= config.monitor_seconds <= 86400.0:
        raise ConfigError(f"monitor_seconds must be 1-86400, not {config.monitor_seconds}")
    if not 0.1 <= config.ztp_sync_seconds <= 86400.0:
        raise ConfigError(f"ztp_sync_seconds must be 0.1-86400, not {config.ztp_sync_seconds}")
    for name in ("image_reserve_bytes", "image_rate_limit"):
        if not 0 <= getattr(config, name) < 2**62:
            raise ConfigError(f"{name} must be 0 or more, not {getattr(config, name)}")
    if not 1 <= config.agent_concurrency <= 1000:
        raise ConfigError(f"agent_concurrency must be 1-1000, not {config.agent_concurrency}")
    _check_dhcp(config)
    return config


def _check_dhcp(config: Config) -> None:
    """The DHCP keys, each on its own and together; what needs the interface's address
    (the subnet when `dhcp_subnet` is empty) is checked when the server starts."""
    try:
        _dhcp_problems(config)
    except DhcpError as exc:
        raise ConfigError(f"DHCP: {exc}") from exc


def _dhcp_problems(config: Config) -> None:
    if config.dhcp_interface and _IFNAME.fullmatch(config.dhcp_interface) is None:
        raise DhcpError(f"dhcp_interface {config.dhcp_interface[:40]!r} is not an interface name")
    if config.dhcp_mode not in ("lease", "inform"):
        raise DhcpError(f"dhcp_mode must be 'lease' or 'inform', not {config.dhcp_mode!r}")
    if config.dhcp_durability not in ("fsync", "process"):
        raise DhcpError(
            f"dhcp_durability must be 'fsync' or 'process', not {config.dhcp_durability!r}"
        )
    if config.dhcp_mode == "inform" and (config.dhcp_pool or config.dhcp_reservations):
        raise DhcpError("inform mode hands out no address: drop dhcp_pool and dhcp_reservations")
    if config.dhcp_interface and config.dhcp_mode == "lease" and not config.dhcp_pool:
        raise DhcpError("lease mode needs a pool: --dhcp-pool FIRST-LAST (or dhcp_pool)")
    if not 60 <= config.dhcp_lease_seconds <= 0xFFFFFFFE:
        raise DhcpError(
            f"dhcp_lease_seconds must be 60 to 4294967294, not {config.dhcp_lease_seconds}"
        )
    if not 1 <= config.dhcp_port <= 65535:
        raise DhcpError(f"dhcp_port {config.dhcp_port} is outside 1-65535")
    if not 0 <= config.dhcp_vlan <= 4094:
        raise DhcpError(f"dhcp_vlan must be 0 (none) or a VLAN id 1-4094, not {config.dhcp_vlan}")
    BootOptions(
        vlan_id=config.dhcp_vlan or None,
        vlan_options=config.dhcp_vlan_options if config.dhcp_vlan else (),
        routers=tuple(parse_address(a, "dhcp_router") for a in [config.dhcp_router] if a),
        dns=tuple(parse_address(a, "dhcp_dns") for a in config.dhcp_dns),
        ntp=tuple(parse_address(a, "dhcp_ntp") for a in config.dhcp_ntp),
        domain=config.dhcp_domain or None,
        forced=config.dhcp_force_options,
    )
    wrong = [code for code in config.dhcp_vlan_options if code not in VLAN_OPTIONS]
    if wrong:
        raise DhcpError(f"dhcp_vlan_options {wrong} are not among {list(VLAN_OPTIONS)}")
    if config.dhcp_boot_url:
        check_url(config.dhcp_boot_url, "dhcp_boot_url")
    reservations = tuple(parse_reservation(text) for text in config.dhcp_reservations)
    if not config.dhcp_pool:
        return
    first, last = parse_range(config.dhcp_pool)
    if config.dhcp_subnet:
        try:
            subnet = IPv4Network(config.dhcp_subnet, strict=False)
        except ValueError as exc:
            raise DhcpError(f"dhcp_subnet {config.dhcp_subnet[:40]!r} is not a CIDR") from exc
        Pool(subnet, first, last, config.dhcp_lease_seconds, reservations=reservations)
