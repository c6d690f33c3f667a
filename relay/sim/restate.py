"""What a simulated phone's REST API answers (phones.md section 4), without any sockets.

`RestState.answer()` takes one authenticated request and returns the HTTP
status, the JSON envelope and, for requests that reboot or re-provision the
phone, the action the phone must carry out afterwards; relay.sim.rest is the
HTTPS adapter around it. Keeping this pure lets the rules be read in one place.

Decisions where phones.md leaves room:
- every value inside `data` is a string, as on the phones (`"UpTime": "734"`);
- `UpTime` is whole seconds since power-on; `LastRestart` is the power-on
  time as ISO 8601 UTC (`2024-05-01T12:00:00Z`), `LastRestartReason` says why;
- config/get omits names no layer sets and that have no known default
  (Status stays 2000), so one unknown name does not spoil a batch;
- malformed JSON or a body of the wrong shape is Status 4000 with HTTP 200;
  unknown paths are HTTP 404 and known paths with the wrong method HTTP 405,
  both with Status 4004;
- callStatus lists every call (an empty list when there is none); a call is
  "RingBack" for its first RING_SECONDS, then "Connected";
- `configReset` without a suffix clears local, web, device and cloud layers;
  the simulator has no cloud-supplied settings, so `/cloud` clears an empty layer.
"""

from __future__ import annotations

import json
import re
import zlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from relay.sim.layers import FACTORY_ADMIN_PASSWORD, RESETTABLE, Settings

OK = "2000"
INVALID_INPUT = "4000"
BUSY = "4001"
LINE_NOT_REGISTERED = "4002"
NOT_ALLOWED = "4003"
NOT_SUPPORTED = "4004"
NO_SUCH_LINE = "4005"
NO_SUCH_CALL = "4007"
TOO_BIG = "4009"
DEFAULT_PASSWORD = "4010"  # noqa: S105 (a status code)

MAX_SET_NAMES = 20
MAX_CALLS = 4
MAX_NAME = 256
RING_SECONDS = 2.0
CALL_TYPES = ("SIP", "TEL", "H323")
FIRST_HANDLE = 0x5A0

_NAME_RE = re.compile(r"[A-Za-z0-9_.\-]+")
_LINE_ADDRESS_RE = re.compile(r"reg\.([0-9]{1,3})\.address")


@dataclass(frozen=True, slots=True)
class DeviceFacts:
    """What the phone knows about itself that the REST state does not own."""

    model: str
    mac: str
    part_number: str
    firmware: str
    ip: str
    provisioning_state: str
    powered_on_at: float
    last_restart_reason: str


@dataclass(frozen=True, slots=True)
class Line:
    """A configured line (`reg.N.*`); it registers unless told to fail."""

    number: int
    label: str
    address: str
    user_id: str
    proxy: str
    registered: bool


@dataclass(frozen=True, slots=True)
class Call:
    """A call placed with callctrl/dial."""

    handle: str
    line: int
    dest: str
    protocol: str
    started: float

    def state(self, now: float) -> str:
        return "RingBack" if now - self.started < RING_SECONDS else "Connected"

    def duration(self, now: float) -> int:
        return int(max(0.0, now - self.started))


@dataclass(frozen=True, slots=True)
class RestReply:
    """HTTP status, JSON body, and what the phone must do once the answer is sent."""

    http_status: int
    payload: Mapping[str, Any]
    action: str | None = None

    @property
    def status(self) -> str | None:
        value = self.payload.get("Status")
        return value if isinstance(value, str) else None


@dataclass(frozen=True, slots=True)
class RestRecord:
    """One request as the phone saw it, for tests and the demo."""

    method: str
    path: str
    http_status: int
    status: str | None
    at: float


@dataclass
class RestState:
    """The phone's REST-visible state: its settings, calls, failing lines and busy time."""

    settings: Settings
    calls: dict[str, Call] = field(default_factory=dict)
    failing_lines: set[int] = field(default_factory=set)
    busy_until: float = 0.0
    _next_handle: int = field(default=FIRST_HANDLE, init=False, repr=False)

    def lines(self) -> list[Line]:
        """Every `reg.N.address` that is set, by line number."""
        effective = self.settings.effective()
        lines: list[Line] = []
        for name, address in effective.items():
            match = _LINE_ADDRESS_RE.fullmatch(name)
            if match is None or not address:
                continue
            number = int(match[1])
            proxy = effective.get(f"reg.{number}.server.1.address") or effective.get(
                "voIpProt.server.1.address", ""
            )
            lines.append(
                Line(
                    number=number,
                    label=effective.get(f"reg.{number}.label") or address,
                    address=address,
                    user_id=effective.get(f"reg.{number}.auth.userId") or address,
                    proxy=proxy,
                    registered=number not in self.failing_lines and "fail" not in address.lower(),
                )
            )
        return sorted(lines, key=lambda line: line.number)

    def answer(
        self, method: str, path: str, body: bytes, facts: DeviceFacts, now: float
    ) -> RestReply:
        """One request that passed authentication and the one-at-a-time rule."""
        route = _ROUTES.get(path)
        if route is None:
            return RestReply(404, {"Status": NOT_SUPPORTED})
        if route[0] != method:
            return RestReply(405, {"Status": NOT_SUPPORTED})
        if self.settings.admin_password == FACTORY_ADMIN_PASSWORD:
            return _status(DEFAULT_PASSWORD)
        if now < self.busy_until:
            return _status(BUSY)
        data: Any = None
        if method == "POST" and body.strip():
            try:
                envelope = json.loads(body)
            except (ValueError, RecursionError):
                return _status(INVALID_INPUT)
            if not isinstance(envelope, dict) or "data" not in envelope:
                return _status(INVALID_INPUT)
            data = envelope["data"]
        return route[1](self, _Request(data=data, facts=facts, now=now, path=path))

    def new_handle(self) -> str:
        """Handles look like the phones' (`0x5a0`), unique for the phone's lifetime."""
        handle = f"0x{self._next_handle:x}"
        self._next_handle += 1
        return handle


@dataclass(frozen=True, slots=True)
class _Request:
    data: Any
    facts: DeviceFacts
    now: float
    path: str


def _status(status: str, data: Any = None, action: str | None = None) -> RestReply:
    payload: dict[str, Any] = {"Status": status}
    if data is not None:
        payload["data"] = data
    return RestReply(200, payload, action)


def _restart(_state: RestState, _request: _Request) -> RestReply:
    return _status(OK, action="restart")


def _reboot(_state: RestState, _request: _Request) -> RestReply:
    return _status(OK, action="reboot")


def _factory_reset(state: RestState, _request: _Request) -> RestReply:
    state.settings.factory_reset()
    state.calls.clear()
    return _status(OK, action="factory_reset")


def _config_reset(state: RestState, request: _Request) -> RestReply:
    layer = request.path.rsplit("/", 1)[1]
    state.settings.reset(RESETTABLE if layer == "configReset" else (layer,))
    return _status(OK)


def _update_configuration(_state: RestState, _request: _Request) -> RestReply:
    return _status(OK, action="update_configuration")


def _config_get(state: RestState, request: _Request) -> RestReply:
    names = request.data
    if not isinstance(names, list) or not all(_is_name(name) for name in names):
        return _status(INVALID_INPUT)
    out: dict[str, dict[str, str]] = {}
    for name in names:
        found = state.settings.lookup(name)
        if found is not None:
            out[name] = {"Value": found[0], "Source": found[1]}
    return _status(OK, out)


def _config_set(state: RestState, request: _Request) -> RestReply:
    values = request.data
    if not isinstance(values, dict) or not values:
        return _status(INVALID_INPUT)
    if len(values) > MAX_SET_NAMES:
        return _status(TOO_BIG)
    clean: dict[str, str] = {}
    for name, value in values.items():
        text = _value_text(value)
        if not _is_name(name) or text is None:
            return _status(INVALID_INPUT)
        clean[name] = text
    state.settings.set_local(clean)
    return _status(OK)


def _device_info(state: RestState, request: _Request) -> RestReply:
    facts, now = request.facts, request.now
    uptime = int(max(0.0, now - facts.powered_on_at))
    return _status(
        OK,
        {
            "Model": facts.model,
            "ModelNumber": _spaced_model(facts.model),
            "PartNumber": facts.part_number,
            "MACAddress": facts.mac,
            "Firmware": facts.firmware,
            "FirmwareRelease": facts.firmware,
            "UpTime": str(uptime),
            "UpTimeSinceLastReboot": _days_clock(uptime),
            "IPV4Address": facts.ip,
            "IPV6Address": "",
            "DeviceType": "hardwareEndpoint",
            "DeviceVendor": "Polycom",
            "DeviceState": "InCall" if state.calls else "Idle",
            "ProvisioningState": facts.provisioning_state,
            "ReadyToUse": "True",
            "LastRestart": _iso(facts.powered_on_at),
            "LastRestartReason": facts.last_restart_reason,
            "AttachedHardware": {"EM": [], "Camera": "", "Headset": ""},
        },
    )


def _device_stats(state: RestState, request: _Request) -> RestReply:
    uptime = int(max(0.0, request.now - request.facts.powered_on_at))
    seed = zlib.crc32(request.facts.mac.encode())
    total = 512 * 1024 * 1024
    used = total // 4 + seed % (total // 8)
    return _status(
        OK,
        {
            "UpTime": str(uptime),
            "CPU": {"Current": str(3 + seed % 20), "Average": str(2 + seed % 15)},
            "Memory": {"Total": str(total), "Used": str(used), "Free": str(total - used)},
            "CallsActive": str(len(state.calls)),
        },
    )


def _network_info(state: RestState, request: _Request) -> RestReply:
    settings = state.settings
    return _status(
        OK,
        {
            "IPV4Address": request.facts.ip,
            "SubnetMask": "255.0.0.0",
            "DefaultGateway": "127.0.0.1",
            "DNSServer": "127.0.0.53",
            "DHCP": "enabled",
            "VLANID": settings.value("device.net.vlanId"),
            "LLDP": "enabled",
            "CDP": "enabled",
            "MACAddress": request.facts.mac,
            "ProvServerAddress": settings.value("device.prov.serverName"),
            "SNTPAddress": settings.value("tcpIpApp.sntp.address"),
        },
    )


def _network_stats(_state: RestState, request: _Request) -> RestReply:
    uptime = int(max(0.0, request.now - request.facts.powered_on_at))
    return _status(
        OK,
        {
            "UpTime": str(uptime),
            "RxPackets": str(uptime * 13 + 1200),
            "TxPackets": str(uptime * 9 + 800),
            "RxErrors": "0",
            "TxErrors": "0",
        },
    )


def _line_info(state: RestState, _request: _Request) -> RestReply:
    return _status(
        OK,
        [
            {
                "LineNumber": str(line.number),
                "Label": line.label,
                "RegistrationStatus": "registered" if line.registered else "unregistered",
                "SIPAddress": _sip_address(line),
                "UserID": line.user_id,
                "ProxyAddress": line.proxy,
                "Protocol": "SIP",
                "LineType": "private",
            }
            for line in state.lines()
        ],
    )


def _running_config(state: RestState, _request: _Request) -> RestReply:
    running = state.settings.running()
    return _status(
        OK, {name: {"Value": value, "Source": source} for name, (value, source) in running.items()}
    )


def _dial(state: RestState, request: _Request) -> RestReply:
    data = request.data
    if not isinstance(data, dict):
        return _status(INVALID_INPUT)
    dest, line_text, kind = data.get("Dest"), data.get("Line", "1"), data.get("Type", "SIP")
    line_text = _value_text(line_text)
    if (
        not isinstance(dest, str)
        or not dest.strip()
        or len(dest) > MAX_NAME
        or kind not in CALL_TYPES
        or line_text is None
        or not line_text.isdigit()
    ):
        return _status(INVALID_INPUT)
    lines = {line.number: line for line in state.lines()}
    line = lines.get(int(line_text))
    if line is None:
        return _status(NO_SUCH_LINE)
    if not line.registered:
        return _status(LINE_NOT_REGISTERED)
    if len(state.calls) >= MAX_CALLS:
        return _status(NOT_ALLOWED)
    handle = state.new_handle()
    state.calls[handle] = Call(handle, line.number, dest.strip(), kind, request.now)
    return _status(OK, {"CallHandle": handle})


def _call_status(state: RestState, request: _Request) -> RestReply:
    now = request.now
    return _status(
        OK,
        [
            {
                "CallHandle": call.handle,
                "Ref": call.handle,
                "CallState": call.state(now),
                "LineId": str(call.line),
                "Type": "Outgoing",
                "Protocol": call.protocol,
                "RemotePartyName": call.dest.split("@", 1)[0],
                "RemotePartyNumber": call.dest,
                "DurationInSeconds": str(call.duration(now)),
            }
            for call in state.calls.values()
        ],
    )


def _end_call(state: RestState, request: _Request) -> RestReply:
    data = request.data
    if not isinstance(data, dict):
        return _status(INVALID_INPUT)
    handle = data.get("Ref", data.get("CallHandle"))
    if not isinstance(handle, str):
        return _status(INVALID_INPUT)
    if state.calls.pop(handle, None) is None:
        return _status(NO_SUCH_CALL)
    return _status(OK)


Handler = Callable[[RestState, _Request], RestReply]

_ROUTES: dict[str, tuple[str, Handler]] = {
    "/api/v1/mgmt/safeRestart": ("POST", _restart),
    "/api/v1/mgmt/safeReboot": ("POST", _reboot),
    "/api/v1/mgmt/factoryReset": ("POST", _factory_reset),
    "/api/v1/mgmt/configReset": ("POST", _config_reset),
    **{f"/api/v1/mgmt/configReset/{layer}": ("POST", _config_reset) for layer in RESETTABLE},
    "/api/v1/mgmt/updateConfiguration": ("POST", _update_configuration),
    "/api/v1/mgmt/config/get": ("POST", _config_get),
    "/api/v1/mgmt/config/set": ("POST", _config_set),
    "/api/v1/mgmt/device/info": ("GET", _device_info),
    "/api/v2/mgmt/device/info": ("GET", _device_info),
    "/api/v1/mgmt/device/stats": ("GET", _device_stats),
    "/api/v1/mgmt/network/info": ("GET", _network_info),
    "/api/v1/mgmt/network/stats": ("GET", _network_stats),
    "/api/v1/mgmt/lineInfo": ("GET", _line_info),
    "/api/v2/mgmt/lineInfo": ("GET", _line_info),
    "/api/v1/mgmt/device/runningConfig": ("GET", _running_config),
    "/api/v1/callctrl/dial": ("POST", _dial),
    "/api/v1/callctrl/endCall": ("POST", _end_call),
    "/api/v1/webCallControl/callStatus": ("GET", _call_status),
    "/api/v2/webCallControl/callStatus": ("GET", _call_status),
}


def _is_name(name: object) -> bool:
    return isinstance(name, str) and len(name) <= MAX_NAME and _NAME_RE.fullmatch(name) is not None


def _value_text(value: object) -> str | None:
    """Parameter values are strings; plain numbers are accepted as their decimal text."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str) and len(value) <= 4096:
        return value
    if isinstance(value, int) and abs(value) < 10**18:
        return str(value)
    return None


def _sip_address(line: Line) -> str:
    if "@" in line.address or not line.proxy:
        return line.address
    return f"{line.address}@{line.proxy}"


def _spaced_model(model: str) -> str:
    """ "VVX500" -> "VVX 500", as the phones name themselves in device/info."""
    match = re.fullmatch(r"([A-Za-z]+)([0-9].*)", model)
    return f"{match[1]} {match[2]}" if match else model


def _days_clock(seconds: int) -> str:
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{days} Day {hours}:{minutes:02d}:{secs:02d}"


def _iso(timestamp: float) -> str:
    moment = datetime.fromtimestamp(timestamp, UTC).replace(microsecond=0)
    return moment.isoformat().replace("+00:00", "Z")
