"""One frozen, typed configuration for every service of the appliance.

Sources, lowest precedence first: built-in defaults, a TOML file
(`--config FILE`, else `<data-dir>/relay.toml` if present), environment
variables `RELAY_<FIELD>` (upper case), then command-line flags. Unknown keys
are errors, so a typo in a file never silently does nothing.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEFAULT_API_PORT = 8480
DEFAULT_PROV_PORT = 8443
DEFAULT_PROV_HTTP_PORT = 8481


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

    def port(self, default: int) -> int:
        """The port to bind: 0 (the kernel picks a free one) under --free-ports."""
        return 0 if self.free_ports else default


_FIELDS = {f.name: f for f in dataclasses.fields(Config)}


def _coerce(name: str, raw: object) -> object:
    kind = _FIELDS[name].type
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
    for name in ("api_port", "prov_port", "prov_http_port", "phone_rest_port", "phone_sip_port"):
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
    if not 1 <= config.agent_concurrency <= 1000:
        raise ConfigError(f"agent_concurrency must be 1-1000, not {config.agent_concurrency}")
    return config
