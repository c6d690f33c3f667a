"""The messages between a relay's management agent and the cloud (docs/agent-link.md).

Both sides build and check them here, so the wire format has one definition.
Every `from_wire` takes decoded JSON from the network, enforces hard caps and
raises only `SyncError`; `to_wire` gives JSON-ready dicts.

Exactly-once rests on two sequence numbers: the cloud numbers the jobs it
hands one relay (`Job.seq`), and the relay numbers what it reports
(`Report.seq`). Each side acknowledges by the highest number it has stored
durably, and ignores anything at or below what it already has.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

TASK_TYPES = (
    "check_sync",
    "reboot",
    "reset",
    "set_parameters",
    "dial",
    "get_config",
    "ad_password",
    "capture_screen",
)
RESULTS = ("success", "failure", "not_applicable")
RESET_SCOPES = ("web", "local", "device", "all", "factory")
CONFIG_SCOPES = ("provisioning", "local", "web", "device", "all")
SIP_REGISTRATION = ("registered", "partial", "unregistered", "unknown")
DOWNLOAD_AGENT_STATES = ("running", "stopped", "absent")
# phones.md section 4: config/set takes at most 20 names per request.
SET_CHUNK = 20

# Relayed provisioning (docs/agent-link.md, "Provisioning through a relay"): a relay
# forwarding a phone's request proves itself with this header, and says which
# protocol the phone used.
RELAY_HEADER = "X-Relay-Authorization"
TRANSPORT_HEADER = "X-Phone-Transport"
PHONE_TRANSPORTS = frozenset({"https", "http", "ftp", "ftps", "tftp"})

MAX_TEXT = 1024
MAX_ADDRESSES = 16
MAX_JOBS = 500
MAX_REPORTS = 500
MAX_LINES = 64
MAX_CALLS = 16
MAX_PARAMETERS = 2000
MAX_VALUE = 4096
MAX_DATA_BYTES = 4 * 1024 * 1024

_MAC = re.compile(r"[0-9a-f]{12}")
_PARAMETER = re.compile(r"[A-Za-z0-9_.\-\[\]]{1,200}")


class SyncError(ValueError):
    """A message broke the agent-link format; the text says which field and why."""


def _need(raw: Mapping[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if key not in raw:
        raise SyncError(f"{where}.{key} is missing")
    value = raw[key]
    if not isinstance(value, kind) or (isinstance(value, bool) and kind in (int, float)):
        raise SyncError(f"{where}.{key} has the wrong type")
    return value


def _obj(raw: object, where: str) -> Mapping[str, Any]:
    if not isinstance(raw, Mapping):
        raise SyncError(f"{where} must be an object")
    return raw


def _list(raw: object, where: str, cap: int) -> Sequence[Any]:
    if not isinstance(raw, list):
        raise SyncError(f"{where} must be a list")
    if len(raw) > cap:
        raise SyncError(f"{where} holds {len(raw)} items; at most {cap}")
    return raw


def _text(raw: Mapping[str, Any], key: str, where: str, *, default: str | None = None) -> str:
    if key not in raw and default is not None:
        return default
    value = _need(raw, key, str, where)
    if len(value) > MAX_TEXT:
        raise SyncError(f"{where}.{key} is longer than {MAX_TEXT} characters")
    return str(value)


def _choice(raw: Mapping[str, Any], key: str, where: str, choices: Sequence[str]) -> str:
    value = _text(raw, key, where)
    if value not in choices:
        raise SyncError(f"{where}.{key} must be one of {', '.join(choices)}")
    return value


def _seq(raw: Mapping[str, Any], key: str, where: str) -> int:
    value = _need(raw, key, int, where)
    if not 0 <= value < 2**63:
        raise SyncError(f"{where}.{key} is out of range")
    return int(value)


def _number(raw: Mapping[str, Any], key: str, where: str) -> float | None:
    value = raw.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise SyncError(f"{where}.{key} must be a non-negative number or null")
    return float(value)


def check_mac(value: object, where: str) -> str:
    if not isinstance(value, str) or _MAC.fullmatch(value) is None:
        raise SyncError(f"{where} must be 12 lower-case hex digits")
    return value


def _addresses(raw: object, where: str) -> tuple[str, ...]:
    out = []
    for i, item in enumerate(_list(raw, where, MAX_ADDRESSES)):
        try:
            out.append(str(ipaddress.ip_address(item if isinstance(item, str) else "")))
        except ValueError as exc:
            raise SyncError(f"{where}[{i}] is not an IP address") from exc
    return tuple(out)


def parameters(raw: object, where: str) -> dict[str, str]:
    """A name -> value map of phone parameters (set_parameters, get_config data)."""
    values = _obj(raw, where)
    if len(values) > MAX_PARAMETERS:
        raise SyncError(f"{where} holds {len(values)} parameters; at most {MAX_PARAMETERS}")
    out: dict[str, str] = {}
    for name, value in values.items():
        if not isinstance(name, str) or _PARAMETER.fullmatch(name) is None:
            raise SyncError(f"{where}: {name!r} is not a parameter name")
        if not isinstance(value, str) or len(value) > MAX_VALUE:
            raise SyncError(f"{where}.{name} must be a string of at most {MAX_VALUE} characters")
        out[name] = value
    return out


def chunks(values: Mapping[str, str], size: int = SET_CHUNK) -> list[dict[str, str]]:
    """Split a parameter map into requests of at most `size` names (phones.md section 4)."""
    items = list(values.items())
    return [dict(items[i : i + size]) for i in range(0, len(items), size)]


# -- registration and heartbeat ------------------------------------------------


@dataclass(frozen=True, slots=True)
class Registration:
    """`POST /api/v1/agent/register`: the tenant ID and PIN the cloud shows."""

    tenant: str
    pin: str
    name: str
    version: str
    addresses: tuple[str, ...] = ()

    @classmethod
    def from_wire(cls, raw: object) -> Registration:
        r = _obj(raw, "registration")
        return cls(
            tenant=_text(r, "tenant", "registration"),
            pin=_text(r, "pin", "registration"),
            name=_text(r, "name", "registration", default=""),
            version=_text(r, "version", "registration", default=""),
            addresses=_addresses(r.get("addresses", []), "registration.addresses"),
        )

    def to_wire(self) -> dict[str, Any]:
        return {
            "tenant": self.tenant,
            "pin": self.pin,
            "name": self.name,
            "version": self.version,
            "addresses": list(self.addresses),
        }


@dataclass(frozen=True, slots=True)
class Credential:
    """The cloud's answer to a registration: who the relay is and its secret."""

    relay_id: str
    secret: str
    heartbeat_seconds: float

    @classmethod
    def from_wire(cls, raw: object) -> Credential:
        r = _obj(raw, "credential")
        seconds = _number(r, "heartbeat_seconds", "credential") or 120.0
        return cls(
            relay_id=_text(r, "relay_id", "credential"),
            secret=_text(r, "secret", "credential"),
            heartbeat_seconds=seconds,
        )

    def to_wire(self) -> dict[str, Any]:
        return {
            "relay_id": self.relay_id,
            "secret": self.secret,
            "heartbeat_seconds": self.heartbeat_seconds,
        }


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """`POST /api/v1/agent/heartbeat`, every 2 minutes (cloud.md "Tenant, relays and PIN")."""

    version: str
    addresses: tuple[str, ...]
    uptime: float
    download_agent: str = "absent"
    download_agent_version: str = ""

    @classmethod
    def from_wire(cls, raw: object) -> Heartbeat:
        r = _obj(raw, "heartbeat")
        return cls(
            version=_text(r, "version", "heartbeat"),
            addresses=_addresses(r.get("addresses", []), "heartbeat.addresses"),
            uptime=_number(r, "uptime", "heartbeat") or 0.0,
            download_agent=_choice(r, "download_agent", "heartbeat", DOWNLOAD_AGENT_STATES),
            download_agent_version=_text(r, "download_agent_version", "heartbeat", default=""),
        )

    def to_wire(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "addresses": list(self.addresses),
            "uptime": self.uptime,
            "download_agent": self.download_agent,
            "download_agent_version": self.download_agent_version,
        }


@dataclass(frozen=True, slots=True)
class LinkSettings:
    """The cloud's answer to a heartbeat: the relay's site and the intervals to use."""

    relay_id: str
    site: str | None
    heartbeat_seconds: float
    monitor_seconds: float

    @classmethod
    def from_wire(cls, raw: object) -> LinkSettings:
        r = _obj(raw, "settings")
        site = r.get("site")
        if site is not None and not isinstance(site, str):
            raise SyncError("settings.site must be a string or null")
        return cls(
            relay_id=_text(r, "relay_id", "settings"),
            site=site,
            heartbeat_seconds=_number(r, "heartbeat_seconds", "settings") or 120.0,
            monitor_seconds=_number(r, "monitor_seconds", "settings") or 7200.0,
        )

    def to_wire(self) -> dict[str, Any]:
        return {
            "relay_id": self.relay_id,
            "site": self.site,
            "heartbeat_seconds": self.heartbeat_seconds,
            "monitor_seconds": self.monitor_seconds,
        }


# -- jobs ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Target:
    """A phone as the agent reaches it: its address and REST credentials (a secret)."""

    mac: str
    address: str
    model: str
    firmware: str
    rest: bool
    password: str = field(repr=False)

    @classmethod
    def from_wire(cls, raw: object) -> Target:
        r = _obj(raw, "device")
        return cls(
            mac=check_mac(r.get("mac"), "device.mac"),
            address=_addresses([r.get("address")], "device.address")[0],
            model=_text(r, "model", "device", default=""),
            firmware=_text(r, "firmware", "device", default=""),
            rest=bool(_need(r, "rest", bool, "device")),
            password=_text(r, "password", "device", default=""),
        )

    def to_wire(self) -> dict[str, Any]:
        return {
            "mac": self.mac,
            "address": self.address,
            "model": self.model,
            "firmware": self.firmware,
            "rest": self.rest,
            "password": self.password,
        }


def check_options(task_type: str, raw: object) -> dict[str, Any]:
    """The options each task type takes; unknown keys are refused so typos are seen."""
    options = dict(_obj(raw, "options"))
    where = "options"
    allowed: dict[str, tuple[str, ...]] = {
        "check_sync": ("reboot",),
        "reboot": (),
        "reset": ("scope",),
        "set_parameters": ("parameters",),
        "dial": ("dest", "line", "dial_type"),
        "get_config": ("scope",),
        "ad_password": ("password", "line"),
        "capture_screen": (),
    }
    if task_type not in allowed:
        raise SyncError(f"type must be one of {', '.join(TASK_TYPES)}")
    extra = sorted(set(options) - set(allowed[task_type]))
    if extra:
        raise SyncError(f"options.{extra[0]} is not an option of {task_type}")
    out: dict[str, Any] = {}
    if task_type == "check_sync":
        out["reboot"] = bool(options.get("reboot", False))
    elif task_type == "reset":
        out["scope"] = _choice(options, "scope", where, RESET_SCOPES)
    elif task_type == "get_config":
        out["scope"] = _choice(options, "scope", where, CONFIG_SCOPES)
    elif task_type == "set_parameters":
        values = parameters(_need(options, "parameters", dict, where), "options.parameters")
        if not values:
            raise SyncError("options.parameters must name at least one parameter")
        out["parameters"] = values
    elif task_type == "dial":
        dest = _text(options, "dest", where)
        if not dest.strip():
            raise SyncError("options.dest must not be empty")
        out["dest"] = dest
        out["line"] = _line(options)
        out["dial_type"] = options.get("dial_type", "SIP")
        if out["dial_type"] not in ("SIP", "TEL", "H323"):
            raise SyncError("options.dial_type must be SIP, TEL or H323")
    elif task_type == "ad_password":
        password = _text(options, "password", where)
        if not password:
            raise SyncError("options.password must not be empty")
        out["password"] = password
        out["line"] = _line(options)
    return out


def _line(options: Mapping[str, Any]) -> int:
    line = options.get("line", 1)
    if isinstance(line, bool) or not isinstance(line, int) or not 1 <= line <= MAX_LINES:
        raise SyncError(f"options.line must be a line number 1-{MAX_LINES}")
    return line


@dataclass(frozen=True, slots=True)
class Job:
    """One task on one phone, numbered per relay by the cloud."""

    seq: int
    task_id: str
    type: str
    options: Mapping[str, Any]
    device: Target

    @classmethod
    def from_wire(cls, raw: object) -> Job:
        r = _obj(raw, "job")
        task_type = _choice(r, "type", "job", TASK_TYPES)
        return cls(
            seq=_seq(r, "seq", "job"),
            task_id=_text(r, "task_id", "job"),
            type=task_type,
            options=check_options(task_type, r.get("options", {})),
            device=Target.from_wire(r.get("device")),
        )

    def to_wire(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "task_id": self.task_id,
            "type": self.type,
            "options": dict(self.options),
            "device": self.device.to_wire(),
        }


@dataclass(frozen=True, slots=True)
class JobBatch:
    """`GET /api/v1/agent/jobs?after=N&wait=S`: jobs numbered above N, in order."""

    jobs: tuple[Job, ...]

    @classmethod
    def from_wire(cls, raw: object) -> JobBatch:
        r = _obj(raw, "batch")
        jobs = tuple(Job.from_wire(j) for j in _list(r.get("jobs"), "batch.jobs", MAX_JOBS))
        seqs = [j.seq for j in jobs]
        if seqs != sorted(set(seqs)):
            raise SyncError("batch.jobs must be in increasing seq order")
        return cls(jobs)

    def to_wire(self) -> dict[str, Any]:
        return {"jobs": [j.to_wire() for j in self.jobs]}


# -- reports -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class JobResult:
    """What one job did on its phone. `data` holds what a task returns (configuration
    values; a screen capture as base64 PNG under `image_png`)."""

    job: int
    task_id: str
    device: str
    result: str
    reason: str = ""
    data: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_wire(cls, raw: object) -> JobResult:
        r = _obj(raw, "result")
        data = r.get("data", {})
        return cls(
            job=_seq(r, "job", "result"),
            task_id=_text(r, "task_id", "result"),
            device=check_mac(r.get("device"), "result.device"),
            result=_choice(r, "result", "result", RESULTS),
            reason=_text(r, "reason", "result", default=""),
            data=dict(_obj(data, "result.data")),
        )

    def to_wire(self) -> dict[str, Any]:
        return {
            "job": self.job,
            "task_id": self.task_id,
            "device": self.device,
            "result": self.result,
            "reason": self.reason,
            "data": dict(self.data),
        }


@dataclass(frozen=True, slots=True)
class Line:
    number: int
    registration: str
    sip_address: str = ""
    user_id: str = ""
    proxy: str = ""

    @classmethod
    def from_wire(cls, raw: object) -> Line:
        r = _obj(raw, "line")
        number = _need(r, "number", int, "line")
        if not 1 <= number <= MAX_LINES:
            raise SyncError(f"line.number must be 1-{MAX_LINES}")
        return cls(
            number=number,
            registration=_choice(r, "registration", "line", ("registered", "unregistered")),
            sip_address=_text(r, "sip_address", "line", default=""),
            user_id=_text(r, "user_id", "line", default=""),
            proxy=_text(r, "proxy", "line", default=""),
        )

    def to_wire(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "registration": self.registration,
            "sip_address": self.sip_address,
            "user_id": self.user_id,
            "proxy": self.proxy,
        }


@dataclass(frozen=True, slots=True)
class Call:
    state: str
    remote_name: str = ""
    remote_number: str = ""
    duration: float = 0.0

    @classmethod
    def from_wire(cls, raw: object) -> Call:
        r = _obj(raw, "call")
        return cls(
            state=_text(r, "state", "call"),
            remote_name=_text(r, "remote_name", "call", default=""),
            remote_number=_text(r, "remote_number", "call", default=""),
            duration=_number(r, "duration", "call") or 0.0,
        )

    def to_wire(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "remote_name": self.remote_name,
            "remote_number": self.remote_number,
            "duration": self.duration,
        }


def sip_registration(lines: Sequence[Line]) -> str:
    """cloud.md "Device monitor": computed over the phone's lines."""
    if not lines:
        return "unknown"
    registered = sum(1 for line in lines if line.registration == "registered")
    if registered == len(lines):
        return "registered"
    return "partial" if registered else "unregistered"


@dataclass(frozen=True, slots=True)
class DeviceStatus:
    """What monitoring learned of one phone; an unreachable phone is only `online=False`."""

    device: str
    online: bool
    checked: float
    reason: str = ""
    lines: tuple[Line, ...] = ()
    calls: tuple[Call, ...] = ()
    uptime: float | None = None
    last_restart: float | None = None
    firmware: str = ""

    @property
    def sip_registration(self) -> str:
        return sip_registration(self.lines) if self.online else "unknown"

    @property
    def call_status(self) -> str:
        return "in_call" if self.calls else "idle"

    @classmethod
    def from_wire(cls, raw: object) -> DeviceStatus:
        r = _obj(raw, "status")
        return cls(
            device=check_mac(r.get("device"), "status.device"),
            online=bool(_need(r, "online", bool, "status")),
            checked=_number(r, "checked", "status") or 0.0,
            reason=_text(r, "reason", "status", default=""),
            lines=tuple(
                Line.from_wire(x) for x in _list(r.get("lines", []), "status.lines", MAX_LINES)
            ),
            calls=tuple(
                Call.from_wire(x) for x in _list(r.get("calls", []), "status.calls", MAX_CALLS)
            ),
            uptime=_number(r, "uptime", "status"),
            last_restart=_number(r, "last_restart", "status"),
            firmware=_text(r, "firmware", "status", default=""),
        )

    def to_wire(self) -> dict[str, Any]:
        return {
            "device": self.device,
            "online": self.online,
            "checked": self.checked,
            "reason": self.reason,
            "lines": [x.to_wire() for x in self.lines],
            "calls": [x.to_wire() for x in self.calls],
            "uptime": self.uptime,
            "last_restart": self.last_restart,
            "firmware": self.firmware,
        }


@dataclass(frozen=True, slots=True)
class Report:
    """One outbox entry: a job result or a device status, numbered by the relay."""

    seq: int
    result: JobResult | None = None
    status: DeviceStatus | None = None

    @classmethod
    def from_wire(cls, raw: object) -> Report:
        r = _obj(raw, "report")
        seq = _seq(r, "seq", "report")
        kind = _choice(r, "kind", "report", ("result", "status"))
        if kind == "result":
            return cls(seq, result=JobResult.from_wire(r.get("body")))
        return cls(seq, status=DeviceStatus.from_wire(r.get("body")))

    def to_wire(self) -> dict[str, Any]:
        if self.result is not None:
            return {"seq": self.seq, "kind": "result", "body": self.result.to_wire()}
        assert self.status is not None
        return {"seq": self.seq, "kind": "status", "body": self.status.to_wire()}


@dataclass(frozen=True, slots=True)
class ReportBatch:
    """`POST /api/v1/agent/reports`: answered `{"acked": highest seq the cloud holds}`."""

    reports: tuple[Report, ...]

    @classmethod
    def from_wire(cls, raw: object) -> ReportBatch:
        r = _obj(raw, "reports")
        reports = tuple(
            Report.from_wire(x) for x in _list(r.get("reports"), "reports.reports", MAX_REPORTS)
        )
        seqs = [x.seq for x in reports]
        if seqs != sorted(set(seqs)):
            raise SyncError("reports must be in increasing seq order")
        return cls(reports)

    def to_wire(self) -> dict[str, Any]:
        return {"reports": [x.to_wire() for x in self.reports]}


@dataclass(frozen=True, slots=True)
class Watchlist:
    """`GET /api/v1/agent/devices`: the phones this relay monitors."""

    devices: tuple[Target, ...]
    monitor_seconds: float

    @classmethod
    def from_wire(cls, raw: object) -> Watchlist:
        r = _obj(raw, "watchlist")
        devices = tuple(
            Target.from_wire(x) for x in _list(r.get("devices"), "watchlist.devices", 100_000)
        )
        return cls(devices, _number(r, "monitor_seconds", "watchlist") or 7200.0)

    def to_wire(self) -> dict[str, Any]:
        return {
            "devices": [d.to_wire() for d in self.devices],
            "monitor_seconds": self.monitor_seconds,
        }
