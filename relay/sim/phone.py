"""One simulated phone: finding its server (phones.md 1) and the boot conversation (phones.md 2).

A boot first finds where to provision from, in phones.md section 1's order:
the boot server of the DHCP lease (relay.sim.dhcpclient; a phone whose
`source_ip` is 0.0.0.0 gets its address by DHCP too), else the servers in
flash (`servers`), else, when the lease named none and flash has none, the
answer to a DHCPINFORM, else the ZTP redirect service (`ztp_url`,
relay.sim.ztpclient) when `device.prov.ztpEnabled` is on. Then comes an
Updater stage (boot log, master file, firmware check and, when
the offered version differs, download and reboot) followed by an Application
stage (master file, CONFIG_FILES, the optional per-phone files, the
application log). Afterwards the phone uploads its handset settings and polls
as `prov.polling.*` says. Everything it did is kept for `report()`.

Decisions where phones.md leaves room:
- requests are recorded by the name the phone asked for, relative to the
  server URL (`0004f2a1b2c3.cfg`, `logs/0004f2a1b2c3-app.log`); absolute URLs
  (APP_FILE_PATH may be one) are recorded without their credentials;
- each request opens its own connection, as phones do (certs/tls.py);
- a connection failure moves the phone to the next server URL and it stays
  there; HTTP errors never do (phones.md section 2, "Multiple servers");
  a server whose host name `hosts` maps to several addresses (a stand-in
  for DNS, at most 8, phones.md section 2) is one server URL per address,
  in order; HTTPS still proves the name, FTPS (relay.sim.transports) the
  address;
- the URL's scheme picks the protocol: http(s) here, ftp, ftps and tftp in
  relay.sim.transports; FTP without an account uses the factory one,
  `PlcmSpIp`/`PlcmSpIp` (phones.md section 2); over TFTP the phone does not
  HEAD its log, and a refused upload (the relay's TFTP is read-only, 403) is
  no error: real phones carry on;
- a DHCP lease that is lost (NAK on renewal, expiry) reboots the phone;
- 401 ends the conversation at once: nothing else can succeed with the same
  credentials;
- precedence of parameters: handset settings (`local_overrides`), then
  `<mac>-phone.cfg` (or `-system.cfg`), then `<mac>-web.cfg`, then
  CONFIG_FILES (first file wins), then license files;
- the boot log goes to the LOG_FILE_DIRECTORY of the last master file read,
  since the Updater writes it before it has read this boot's master file.

After a boot the phone serves its REST API over HTTPS (`rest_port`,
relay.sim.rest) and listens for check-sync NOTIFY over UDP (`sip_port`,
relay.sim.sip) on its own address; a reboot asked for by either takes both
away for `reboot_seconds` of the phone's clock, then boots again. Port 0
picks a free port at the first boot and keeps it across reboots.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import ipaddress
import random
import re
import ssl
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import aiohttp
from yarl import URL

from certs.lab import CertError
from relay.proto.polycom.cfgfile import ConfigFileError, parse_config, render_config
from relay.proto.polycom.master import (
    MasterFile,
    MasterFileError,
    app_file_path_for,
    config_files_for,
    expand_macros,
    parse_master,
)
from relay.proto.polycom.models import PART_NUMBERS, ModelError, firmware_file_name
from relay.proto.polycom.useragent import format_user_agent
from relay.sim.clock import Clock, ScaledClock
from relay.sim.dhcpclient import ClientIdentity, Lease
from relay.sim.dhcpnet import DhcpNet, NoLease
from relay.sim.firmware import HEADER_PROBE_BYTES, FirmwareError, ImageCheck, read_header
from relay.sim.httpauth import auth_scheme_for
from relay.sim.identity import user_agent_identity, uses_system_cfg
from relay.sim.layers import ALWAYS_REBOOT, Settings
from relay.sim.rest import PhoneWebServer
from relay.sim.restate import Call, DeviceFacts, Line, RestRecord, RestState
from relay.sim.sip import SipListener
from relay.sim.transports import TransportReply, ftp_request, tftp_request
from relay.sim.ztpclient import MAX_ANSWER, ZtpAnswer, ZtpError, lookup_url, parse_answer

STATES = ("idle", "booting", "provisioned", "failed")
MAX_REBOOTS = 3
# Firmware bodies are verified as they arrive, this much at a time (relay.sim.firmware).
SINK_CHUNK = 256 * 1024
DEFAULT_MASTER = "000000000000.cfg"
# phones.md section 3: period >= 3600, default 86400; the phone ignores an invalid value.
MIN_POLL_PERIOD = 3600
DEFAULT_POLL_PERIOD = 86400
DAY = 86400
# RFC 2131: a client without an address yet; as `source_ip`, "get one by DHCP".
DHCP_ADDRESS = "0.0.0.0"  # noqa: S104 - a marker, never bound
SCHEMES = ("http", "https", "ftp", "ftps", "tftp")
# phones.md section 2: one DNS name maps to at most 8 addresses.
MAX_ADDRESSES = 8
# phones.md section 2: the factory default FTP account.
FACTORY_FTP_ACCOUNT = "PlcmSpIp"
ZTP_ENABLED = "device.prov.ztpEnabled"

_MAC_RE = re.compile(r"[0-9a-f]{12}")
_HHMM_RE = re.compile(r"([01]?[0-9]|2[0-3]):([0-5][0-9])")

Request = tuple[str, str, int]


class _Abort(Exception):
    """The conversation cannot go on; the message is the phone's error."""


class _Unauthorized(_Abort):
    """HTTP 401: no later request can succeed with the same credentials."""


@dataclass(frozen=True, slots=True)
class PhoneSpec:
    """Who a phone is and where it provisions from.

    `servers` are tried in order on connection failures (phones.md section 2);
    each may name the master file (`.../site.cfg`) and carry credentials
    (`https://user:pass@host/path`), which then replace `user`/`password`;
    http, https, ftp, ftps and tftp URLs. `servers` may be empty when the
    phone discovers its server: `source_ip` 0.0.0.0 (DHCP) or a `ztp_url`
    (`https://relay:9443/ztp/v1`). `hosts` maps a host name to its addresses
    (1 to 8), as DNS would.
    `part_number` defaults to the model's (relay.proto.polycom.models).
    `local_overrides` are settings made on the handset, uploaded as `<mac>-phone.cfg`.
    `rest_port` / `sip_port`: where the phone serves its REST API (HTTPS) and
    listens for check-sync NOTIFY (UDP) on `source_ip`; None for neither.
    Times are seconds of the phone's clock: `rest_processing` per REST request,
    `reboot_seconds` offline during a reboot, `busy_after_boot` answering 4001.
    """

    mac: str
    model: str
    firmware: str
    source_ip: str
    servers: tuple[str, ...]
    user: str = ""
    password: str = ""
    part_number: str = ""
    cacert: str | None = None
    local_overrides: Mapping[str, str] = field(default_factory=dict)
    request_timeout: float = 30.0
    rest_port: int | None = None
    sip_port: int | None = None
    rest_processing: float = 0.02
    reboot_seconds: float = 10.0
    busy_after_boot: float = 1.0
    ztp_url: str | None = None
    hosts: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        mac = self.mac.lower().replace(":", "").replace("-", "")
        if _MAC_RE.fullmatch(mac) is None:
            raise ValueError(f"MAC {self.mac!r} is not 12 hex digits")
        object.__setattr__(self, "mac", mac)
        if isinstance(self.servers, str):
            raise ValueError("servers is a sequence of URLs, not one string")
        object.__setattr__(self, "servers", tuple(self.servers))
        for server in self.servers:
            if URL(server).scheme not in SCHEMES or not URL(server).host:
                raise ValueError(f"server {_shown(server)!r} is not a {'/'.join(SCHEMES)} URL")
        ipaddress.IPv4Address(self.source_ip)
        if self.ztp_url is not None and (
            URL(self.ztp_url).scheme not in ("http", "https") or not URL(self.ztp_url).host
        ):
            raise ValueError(f"ztp_url {self.ztp_url!r} is not an http:// or https:// URL")
        if not self.servers and self.source_ip != DHCP_ADDRESS and self.ztp_url is None:
            raise ValueError("a phone needs a server URL, DHCP (source_ip 0.0.0.0) or a ZTP URL")
        object.__setattr__(self, "hosts", MappingProxyType(_checked_hosts(self.hosts)))
        if not self.part_number:
            if self.model not in PART_NUMBERS:
                raise ValueError(f"model {self.model!r} has no known part number; give one")
            object.__setattr__(self, "part_number", PART_NUMBERS[self.model])
        object.__setattr__(self, "local_overrides", MappingProxyType(dict(self.local_overrides)))
        for name in ("rest_port", "sip_port"):
            port = getattr(self, name)
            if port is not None and not 0 <= port < 65536:
                raise ValueError(f"{name} {port} is outside 0..65535")
        for name in ("rest_processing", "reboot_seconds", "busy_after_boot"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must not be negative")


def _checked_hosts(hosts: Mapping[str, Sequence[str]]) -> dict[str, tuple[str, ...]]:
    """Lower-case names to 1..8 IPv4 addresses each (phones.md section 2)."""
    checked: dict[str, tuple[str, ...]] = {}
    for name, addresses in hosts.items():
        if isinstance(addresses, str) or not 0 < len(addresses) <= MAX_ADDRESSES:
            raise ValueError(f"host {name!r} needs 1 to {MAX_ADDRESSES} addresses")
        checked[name.lower()] = tuple(str(ipaddress.IPv4Address(a)) for a in addresses)
    return checked


@dataclass(frozen=True, slots=True)
class PhoneReport:
    """A snapshot of what a phone did; `requests` are (method, name, status) in order."""

    mac: str
    model: str
    part_number: str
    source_ip: str
    state: str
    firmware: str
    reboots: int
    polls: int
    failovers: int
    boot_seconds: float | None
    bytes_down: int
    bytes_up: int
    errors: tuple[str, ...]
    requests: tuple[Request, ...]
    parameters: Mapping[str, str]
    missing_set_companions: tuple[str, ...]
    boot_source: str = ""
    servers: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "mac": self.mac,
            "model": self.model,
            "part_number": self.part_number,
            "source_ip": self.source_ip,
            "state": self.state,
            "firmware": self.firmware,
            "reboots": self.reboots,
            "polls": self.polls,
            "failovers": self.failovers,
            "boot_seconds": self.boot_seconds,
            "bytes_down": self.bytes_down,
            "bytes_up": self.bytes_up,
            "errors": list(self.errors),
            "requests": [list(request) for request in self.requests],
            "parameters": dict(self.parameters),
            "missing_set_companions": list(self.missing_set_companions),
            "boot_source": self.boot_source,
            "servers": list(self.servers),
        }


@dataclass(frozen=True, slots=True)
class _Server:
    """A server URL split into the directory names resolve against and the named master file.

    `address` is where to connect when `hosts` resolved the URL's name.
    """

    base: URL
    master: str | None
    display: str
    address: str | None = None

    def at(self, address: str) -> _Server:
        return _Server(self.base, self.master, f"{self.display} ({address})", address)

    @classmethod
    def parse(cls, text: str) -> _Server:
        url = URL(text).with_query(None).with_fragment(None)
        path = url.path or "/"
        master = None
        if path.endswith(".cfg"):
            master = url.name
            path = path[: path.rfind("/") + 1]
        elif not path.endswith("/"):
            path += "/"
        base = url.with_path(path)
        return cls(base=base, master=master, display=str(base.with_user(None)))


@functools.lru_cache(maxsize=16)
def _client_context(cacert: str) -> ssl.SSLContext:
    """One TLS context per CA file, shared by every phone that trusts it."""
    return ssl.create_default_context(cafile=cacert)


class SimPhone:
    """A simulated phone; `await boot()`, inspect `report()`, and `await aclose()` when done.

    `dhcp` is the link a phone with `source_ip` 0.0.0.0 gets its lease on
    (relay.sim.dhcpnet); whoever made it closes it.
    """

    def __init__(
        self,
        spec: PhoneSpec,
        *,
        clock: Clock | None = None,
        rng: random.Random | None = None,
        dhcp: DhcpNet | None = None,
    ) -> None:
        self.spec = spec
        self._clock: Clock = clock if clock is not None else ScaledClock()
        self._rng = rng if rng is not None else random.Random(spec.mac)
        self._dhcp = dhcp
        self._dhcp_rng = random.Random(f"dhcp/{spec.mac}")
        self._identity = user_agent_identity(spec.model)
        self._servers: tuple[_Server, ...] = ()
        self._current = 0
        self._boot_source = ""
        self._use_servers(spec.servers, "")
        self._address = spec.source_ip
        self._session: aiohttp.ClientSession | None = None
        self._lock = asyncio.Lock()
        self._poll_task: asyncio.Task[None] | None = None
        self._log_directory = ""
        self._overrides_directory = ""
        self._state = "idle"
        self._firmware = spec.firmware
        self._reboots = 0
        self._polls = 0
        self._failovers = 0
        self._boot_seconds: float | None = None
        self._bytes_down = 0
        self._bytes_up = 0
        self._errors: list[str] = []
        self._requests: list[Request] = []
        self._missing: list[str] = []
        self.settings = Settings(spec.local_overrides)
        self._rest = RestState(self.settings)
        self._rest_records: list[RestRecord] = []
        self._web: PhoneWebServer | None = None
        self._sip: SipListener | None = None
        self._rest_port = spec.rest_port
        self._sip_port = spec.sip_port
        self._tasks: set[asyncio.Task[None]] = set()
        self._online = False
        self._rebooting = False
        self._powered_on_at: float | None = None
        self._restart_reason = "power on"
        self._restarts = 0
        self._check_syncs = 0

    @property
    def mac(self) -> str:
        return self.spec.mac

    @property
    def state(self) -> str:
        return self._state

    @property
    def firmware(self) -> str:
        return self._firmware

    @property
    def address(self) -> str:
        """The phone's own address: `source_ip`, or what DHCP leased it (0.0.0.0 before)."""
        return self._address

    @property
    def parameters(self) -> Mapping[str, str]:
        """The effective parameters: every settings layer merged (relay.sim.layers)."""
        return MappingProxyType(self._parameters)

    @property
    def _parameters(self) -> dict[str, str]:
        return self.settings.effective()

    @property
    def rest_auth_scheme(self) -> str | None:
        """ "basic" or "digest" by model; None for models without the REST API."""
        return auth_scheme_for(self.spec.model)

    @property
    def rest_address(self) -> tuple[str, int] | None:
        """Where the REST API is (port known once bound), or None when the phone has none."""
        if self._rest_port is None or self.rest_auth_scheme is None:
            return None
        return self._address, self._rest_port

    @property
    def sip_address(self) -> tuple[str, int] | None:
        return None if self._sip_port is None else (self._address, self._sip_port)

    @property
    def online(self) -> bool:
        """Booted and answering; False while rebooting and after aclose()."""
        return self._online

    @property
    def uptime(self) -> float:
        """Seconds of the phone's clock since it last powered on (0 when off)."""
        if not self._online or self._powered_on_at is None:
            return 0.0
        return max(0.0, self._clock.time() - self._powered_on_at)

    @property
    def last_restart(self) -> float | None:
        """When (phone clock, epoch seconds) the phone last powered on."""
        return self._powered_on_at

    @property
    def last_restart_reason(self) -> str:
        return self._restart_reason

    @property
    def restarts(self) -> int:
        """Reboots asked for over REST or SIP (firmware reboots are in report().reboots)."""
        return self._restarts

    @property
    def check_syncs(self) -> int:
        """check-syncs received: SIP NOTIFY check-sync and REST updateConfiguration."""
        return self._check_syncs

    @property
    def calls(self) -> tuple[Call, ...]:
        return tuple(self._rest.calls.values())

    @property
    def lines(self) -> tuple[Line, ...]:
        return tuple(self._rest.lines())

    @property
    def rest_requests(self) -> tuple[RestRecord, ...]:
        return tuple(self._rest_records)

    def set_busy(self, seconds: float) -> None:
        """Answer Status 4001 for the next `seconds` of the phone's clock."""
        self._rest.busy_until = self._clock.time() + seconds

    def fail_line(self, number: int, failing: bool = True) -> None:
        """Make line `number` fail to register (or register again)."""
        if failing:
            self._rest.failing_lines.add(number)
        else:
            self._rest.failing_lines.discard(number)

    def report(self) -> PhoneReport:
        return PhoneReport(
            mac=self.spec.mac,
            model=self.spec.model,
            part_number=self.spec.part_number,
            source_ip=self._address,
            state=self._state,
            firmware=self._firmware,
            reboots=self._reboots,
            polls=self._polls,
            failovers=self._failovers,
            boot_seconds=self._boot_seconds,
            bytes_down=self._bytes_down,
            bytes_up=self._bytes_up,
            errors=tuple(self._errors),
            requests=tuple(self._requests),
            parameters=MappingProxyType(dict(self._parameters)),
            missing_set_companions=tuple(self._missing),
            boot_source=self._boot_source,
            servers=tuple(server.display for server in self._servers),
        )

    async def boot(self) -> PhoneReport:
        """Power on: Updater stage (rebooting after each upgrade), then Application stage.

        The phone ends "provisioned" only if nothing went wrong; any error
        (a missing CONFIG_FILES entry, a refused upload, a bad image) makes it "failed".
        Firmware and effective parameters survive from the previous boot, as in flash.
        """
        await self._stop_polling()
        await self._stop_listeners()
        async with self._lock:
            self._reset()
            self._state = "booting"
            self._powered_on_at = self._clock.time()
            started = self._clock.monotonic()
            try:
                await self._discover()
                await self._boot_conversation()
            except _Abort as abort:
                self._errors.append(str(abort))
            await self._start_listeners()
            self._state = "failed" if self._errors else "provisioned"
            if self._state == "provisioned":
                self._boot_seconds = self._clock.monotonic() - started
            self._rest.busy_until = self._clock.time() + self.spec.busy_after_boot
            self._online = True
        self._schedule_polling()
        return self.report()

    async def poll_now(self) -> PhoneReport:
        """One poll: the Application stage again (phones.md section 3, prov.polling.*).

        The state stays as it is while polling (a provisioned phone keeps working)
        and afterwards says whether this poll had errors.
        """
        async with self._lock:
            errors_before = len(self._errors)
            try:
                await self._application_stage()
            except _Abort as abort:
                self._errors.append(str(abort))
            self._polls += 1
            self._state = "failed" if len(self._errors) > errors_before else "provisioned"
        self._schedule_polling()
        return self.report()

    def abandon(self, reason: str) -> None:
        """Give up on a boot that did not settle (a fleet timeout); the phone counts as failed."""
        if self._state in ("idle", "booting"):
            self._errors.append(reason)
            self._state = "failed"

    def next_poll_delay(self) -> float | None:
        """Simulated seconds until the next poll, or None when polling is off."""
        params = self._parameters
        if params.get("prov.polling.enabled") != "1":
            return None
        mode = params.get("prov.polling.mode", "abs")
        if mode == "random":
            start = _seconds_of_day(params.get("prov.polling.time", ""), 3 * 3600)
            end = _seconds_of_day(params.get("prov.polling.timeRandomEnd", ""), start)
            if end <= start:
                end += DAY
            target = self._rng.uniform(start, end)
            delay = (target - self._clock.time()) % DAY
            return delay if delay > 0 else float(DAY)
        try:
            period = int(params.get("prov.polling.period", ""))
        except ValueError:
            period = DEFAULT_POLL_PERIOD
        return float(period if period >= MIN_POLL_PERIOD else DEFAULT_POLL_PERIOD)

    async def aclose(self) -> None:
        """Stop reboots, re-provisioning and polling; close the listeners and the HTTP session."""
        tasks, self._tasks = self._tasks, set()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._stop_polling()
        await self._stop_listeners()
        self._online = False
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> SimPhone:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.aclose()

    def _reset(self) -> None:
        self._reboots = 0
        self._polls = 0
        self._failovers = 0
        self._boot_seconds = None
        self._bytes_down = 0
        self._bytes_up = 0
        self._errors = []
        self._requests = []
        self._missing = []

    async def _discover(self) -> None:
        """Where this boot provisions from, in phones.md section 1's order.

        The lease's boot server (custom option, else 66), else flash
        (`servers`), else the DHCPINFORM answer (asked for by the DHCP client
        only when flash is empty), else ZTP when enabled.
        """
        found: tuple[str, ...] = ()
        source = ""
        if self.spec.source_ip == DHCP_ADDRESS:
            lease = await self._lease()
            await self._set_address(str(lease.address))
            boot = lease.boot_server
            if boot is not None:
                found, source = (boot.url,), "dhcp" if boot.via == "lease" else "inform"
        if not found and self.spec.servers:
            found, source = self.spec.servers, "static"
        if not found and self.spec.ztp_url is not None and self.settings.enabled(ZTP_ENABLED):
            answer = await self._ztp_lookup(self.spec.ztp_url)
            if answer is not None:
                found, source = (answer.server(),), "ztp"
        if not found:
            raise _Abort(
                "no provisioning server: none from DHCP or DHCPINFORM, none in flash, none from ZTP"
            )
        try:
            self._use_servers(found, source)
        except ValueError as exc:
            raise _Abort(f"the {source} server URL is not usable: {exc}") from None

    async def _lease(self) -> Lease:
        if self._dhcp is None:
            raise _Abort("source_ip 0.0.0.0 asks for DHCP, but the phone has no DHCP link")
        spec = self.spec
        identity = ClientIdentity.of(spec.mac, spec.model, spec.part_number, self._firmware)
        try:
            return await self._dhcp.obtain(
                identity,
                inform=not self.spec.servers,
                rng=self._dhcp_rng,
                on_lost=self._on_lease_lost,
            )
        except NoLease as exc:
            raise _Abort(f"DHCP: {exc}") from None

    def _on_lease_lost(self, reason: str) -> None:
        """Without its address the phone restarts its network, as a reboot (phones.md 1)."""
        self._spawn(self._reboot(f"DHCP lease lost: {reason}", safe=False), "reboot")

    async def _set_address(self, address: str) -> None:
        """A new address: the old session's connections are bound to the old one."""
        if address == self._address:
            return
        self._address = address
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _use_servers(self, urls: Sequence[str], source: str) -> None:
        """One `_Server` per URL, or per address of its host name (`hosts`), in order."""
        servers: list[_Server] = []
        for url in urls:
            server = _Server.parse(url)
            addresses = self.spec.hosts.get((server.base.host or "").lower(), ())
            servers += [server.at(address) for address in addresses] or [server]
        if tuple(servers) != self._servers:
            self._servers = tuple(servers)
            self._current = 0
        self._boot_source = source

    async def _ztp_lookup(self, ztp_url: str) -> ZtpAnswer | None:
        """`GET {ztp_url}/devices/{mac}` (phones.md 1.5): the answer, or None for 404."""
        url = lookup_url(ztp_url, self.spec.mac)
        headers = {"User-Agent": self._user_agent("updater")}
        session = self._ensure_session()
        try:
            async with session.get(url, headers=headers, allow_redirects=False) as response:
                body = await _read_at_most(response, MAX_ANSWER + 1)
                response.close()
                status = response.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise _Abort(f"ZTP lookup {url}: {_why(exc)}") from None
        self._requests.append(("GET", str(url), status))
        if status == 404:
            return None
        if status != 200:
            raise _Abort(f"ZTP lookup {url}: HTTP {status}")
        try:
            return parse_answer(body, self.spec.mac)
        except ZtpError as exc:
            raise _Abort(f"ZTP lookup {url}: {exc}") from None

    async def _boot_conversation(self) -> None:
        while await self._updater_stage():
            self._reboots += 1
        await self._application_stage()
        await self._upload_local_overrides()

    async def _updater_stage(self) -> bool:
        """Boot log, master file, firmware; True when new firmware was installed (a reboot)."""
        boot_log = self._log_lines(
            "Updater",
            [
                f"Updater {self._firmware} starting, reboot {self._reboots}",
                f"MAC {self.spec.mac} model {self.spec.model} part {self.spec.part_number}",
                f"Provisioning server {self._server.display}",
            ],
        )
        await self._upload(self._in_dir(self._log_directory, f"{self.spec.mac}-boot.log"), boot_log)
        master = await self._fetch_master("updater")
        return await self._check_firmware(master)

    async def _check_firmware(self, master: MasterFile) -> bool:
        """Fetch the header; download and verify the image only if the version differs.

        Any failure is an error and the phone boots on with the firmware it has.
        """
        path = app_file_path_for(master, self.spec.model)
        if not path:
            return False
        try:
            name = firmware_file_name(path, self.spec.part_number)
        except ModelError as exc:
            self._errors.append(f"APP_FILE_PATH {path!r}: {exc.message}")
            return False
        try:
            return await self._upgrade(name)
        except _Unauthorized:
            raise
        except _Abort as abort:
            self._errors.append(str(abort))
            return False

    async def _upgrade(self, name: str) -> bool:
        """Probe the first 512 bytes; True when a different, verified image was installed."""
        probe = await self._request(
            "GET",
            name,
            stage="updater",
            headers={"Range": f"bytes=0-{HEADER_PROBE_BYTES - 1}"},
            limit=HEADER_PROBE_BYTES,
        )
        shown = _shown(name)
        if probe.status not in (200, 206):
            self._errors.append(f"GET {shown}: HTTP {probe.status}, firmware not available")
            return False
        header = read_header(probe.body)
        if header is None:
            self._errors.append(f"GET {shown}: not a firmware image (no SIMFW1 header)")
            return False
        if header.version == self._firmware:
            return False
        if self._reboots >= MAX_REBOOTS:
            self._errors.append(
                f"GET {shown}: firmware {header.version} offered again after "
                f"{MAX_REBOOTS} reboots; keeping {self._firmware}"
            )
            return False
        check = ImageCheck()
        image = await self._request("GET", name, stage="updater", sink=check.feed)
        if image.status != 200:
            self._errors.append(f"GET {shown}: HTTP {image.status} downloading the firmware")
            return False
        try:
            installed = check.result()
        except FirmwareError as exc:
            self._errors.append(
                f"GET {shown}: firmware verification failed ({exc.message}); "
                f"keeping {self._firmware}"
            )
            return False
        self._firmware = installed.version
        return True

    async def _application_stage(self) -> None:
        """Master file, CONFIG_FILES, optional files, then the application log."""
        master = await self._fetch_master("application")
        directories = dict(master.attributes)
        self._log_directory = directories.get("LOG_FILE_DIRECTORY", "")
        self._missing = []
        provisioned = await self._read_config_files(master)
        phone_file, web_file, licenses = await self._read_optional_files(directories)
        for key, value in licenses.items():
            provisioned.setdefault(key, value)
        self.settings.provisioned(config_files=provisioned, phone_file=phone_file, web=web_file)
        await self._write_app_log()

    async def _read_config_files(self, master: MasterFile) -> dict[str, str]:
        """Every CONFIG_FILES entry in order, first file wins; a missing one is an error."""
        provisioned: dict[str, str] = {}
        for entry in config_files_for(master, self.spec.model):
            name = expand_macros(entry, mac=self.spec.mac, model=self.spec.model)
            reply = await self._request("GET", name, stage="application")
            if reply.status != 200:
                self._errors.append(
                    f"GET {_shown(name)}: HTTP {reply.status} for a file listed in CONFIG_FILES"
                )
                continue
            self._merge(name, reply.body, provisioned)
        return provisioned

    async def _read_optional_files(
        self, directories: Mapping[str, str]
    ) -> tuple[dict[str, str], dict[str, str], dict[str, str]]:
        """The per-phone and shared files of phones.md section 2; 404 is normal for each.

        Returns the handset override file's, the web override file's and the
        license parameters; call lists and directories hold no parameters.
        """
        phone_file: dict[str, str] = {}
        web_file: dict[str, str] = {}
        licenses: dict[str, str] = {}
        mac = self.spec.mac
        optional: list[tuple[str, str, dict[str, str] | None]] = [
            ("OVERRIDES_DIRECTORY", self._override_file, phone_file),
            ("OVERRIDES_DIRECTORY", f"{mac}-web.cfg", web_file),
            ("LICENSE_DIRECTORY", "000000000000-license.cfg", licenses),
            ("LICENSE_DIRECTORY", f"{mac}-license.cfg", licenses),
            ("CALL_LISTS_DIRECTORY", f"{mac}-calls.xml", None),
            ("CONTACTS_DIRECTORY", f"{mac}-directory.xml", None),
            ("CONTACTS_DIRECTORY", "000000000000-directory.xml", None),
        ]
        for attribute, file_name, into in optional:
            name = self._in_dir(directories.get(attribute, ""), file_name)
            reply = await self._request("GET", name, stage="application")
            if reply.status == 404:
                continue
            if reply.status != 200:
                self._errors.append(f"GET {_shown(name)}: HTTP {reply.status}")
            elif into is not None:
                self._merge(name, reply.body, into)
        return phone_file, web_file, licenses

    async def _write_app_log(self) -> None:
        """HEAD then PUT, as the VVX 500 capture shows; appending is the server's business.

        TFTP has no HEAD: the phone only tries the upload.
        """
        app_log = self._in_dir(self._log_directory, f"{self.spec.mac}-app.log")
        if self._scheme_of(app_log) != "tftp":
            head = await self._request("HEAD", app_log, stage="application")
            if head.status not in (200, 404):
                self._errors.append(f"HEAD {_shown(app_log)}: HTTP {head.status}")
        lines = [
            f"Application {self._firmware} provisioned from {self._server.display}",
            f"{len(self._parameters)} parameters in effect",
        ]
        await self._upload(app_log, self._log_lines("Application", lines))

    def _merge(self, name: str, raw: bytes, into: dict[str, str]) -> None:
        """First-wins merge of one file (phones.md section 3); note device.* without .set."""
        try:
            parameters = parse_config(raw)
        except ConfigFileError as exc:
            self._errors.append(f"GET {_shown(name)}: {exc.message}")
            return
        device_set = _is_set(raw, "device.set")
        for key, value in parameters.items():
            if key in into:
                continue
            into[key] = value
            if (
                key.startswith("device.")
                and not (device_set and _is_set(raw, f"{key}.set"))
                and key not in self._missing
            ):
                self._missing.append(key)

    async def _upload_local_overrides(self) -> None:
        """Handset settings go back to the server as the override file (phones.md section 2)."""
        if not self.settings.handset:
            return
        name = self._override_file
        await self._upload(
            self._in_dir(self._overrides_directory, name), render_config(self.settings.handset)
        )

    async def _fetch_master(self, stage: str) -> MasterFile:
        """The URL's own `.cfg`, else `<mac>.cfg`, else `000000000000.cfg` (phones.md section 2)."""
        named = self._server.master
        names = [named] if named else [f"{self.spec.mac}.cfg", DEFAULT_MASTER]
        for index, name in enumerate(names):
            reply = await self._request("GET", name, stage=stage)
            if reply.status == 404 and index + 1 < len(names):
                continue
            if reply.status != 200:
                raise _Abort(f"GET {name}: HTTP {reply.status}, no master file")
            try:
                master = parse_master(reply.body)
            except MasterFileError as exc:
                raise _Abort(f"GET {name}: {exc.message}") from None
            self._overrides_directory = dict(master.attributes).get("OVERRIDES_DIRECTORY", "")
            return master
        raise AssertionError("unreachable: the last name either returns or raises")

    async def _upload(self, name: str, body: bytes) -> None:
        """A refused upload is an error, except over TFTP: read-only there, phones carry on."""
        reply = await self._request("PUT", name, stage=_stage_of(name), data=body)
        if reply.status == 403 and self._scheme_of(name) == "tftp":
            return
        if not 200 <= reply.status < 300:
            self._errors.append(
                f"PUT {_shown(name)}: HTTP {reply.status}, the server refused the upload"
            )

    @property
    def _override_file(self) -> str:
        """CX5100/CX5500 keep handset settings in `-system.cfg`, the others in `-phone.cfg`."""
        suffix = "system" if uses_system_cfg(self.spec.model) else "phone"
        return f"{self.spec.mac}-{suffix}.cfg"

    @property
    def _server(self) -> _Server:
        if not self._servers:
            raise _Abort("no provisioning server yet: the phone has not found one")
        return self._servers[self._current]

    def _scheme_of(self, name: str) -> str:
        """The protocol a request for `name` goes over: its own, or the current server's."""
        return URL(name).scheme if "://" in name else self._server.base.scheme

    def _in_dir(self, directory: str, name: str) -> str:
        """`name` inside a master-file directory attribute; empty means the server root."""
        return f"{directory.rstrip('/')}/{name}" if directory else name

    def _log_lines(self, component: str, messages: Sequence[str]) -> bytes:
        stamp = int(self._clock.time())
        return "".join(
            f"{stamp:010d}|{component[:5]:<5}|4|00|{message}\n" for message in messages
        ).encode()

    async def _request(
        self,
        method: str,
        name: str,
        *,
        stage: str,
        data: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        limit: int | None = None,
        sink: Callable[[bytes], None] | None = None,
    ) -> TransportReply:
        """One request, failing over to the next server URL on connection failure.

        `limit` reads at most that many body bytes, then drops the connection
        (a server that ignores Range sends the whole image). `sink` takes the
        body as it arrives instead of the reply holding it (a firmware image).
        An absolute URL is tried at each address `hosts` gives its name,
        without moving the phone off its server.
        """
        absolute = "://" in name
        if absolute:
            host = (URL(name).host or "").lower()
            targets: list[tuple[URL, str | None, str]] = [
                (URL(name), address, f"{_shown(name)} ({address})")
                for address in self.spec.hosts.get(host, ())
            ] or [(URL(name), None, _shown(name))]
        failures: list[str] = []
        for attempt in range(len(targets) if absolute else len(self._servers)):
            if absolute:
                url, address, label = targets[attempt]
            else:
                server = self._server
                url, address, label = _join(server.base, name), server.address, server.display
            try:
                reply = await self._send(method, url, address, stage, data, headers, limit, sink)
            except (aiohttp.ClientConnectionError, ConnectionError, TimeoutError) as exc:
                # aiohttp's connection errors, and the transports' (relay.sim.transports).
                failures.append(f"{label}: {_why(exc)}")
                if not absolute and len(self._servers) > 1:
                    self._current = (self._current + 1) % len(self._servers)
                    self._failovers += 1
                continue
            except (aiohttp.ClientError, CertError, OSError, ValueError) as exc:
                raise _Abort(f"{method} {_shown(name)}: {_why(exc)}") from None
            self._requests.append((method, _shown(name), reply.status))
            if reply.status == 401:
                raise _Unauthorized(
                    f"{method} {_shown(name)}: HTTP 401, the server refused the credentials "
                    f"of user {self._account_for(url)[0]!r}; check the user name and password"
                )
            return reply
        raise _Abort(f"{method} {_shown(name)}: cannot connect ({'; '.join(failures)})")

    async def _send(
        self,
        method: str,
        url: URL,
        address: str | None,
        stage: str,
        data: bytes | None,
        headers: Mapping[str, str] | None,
        limit: int | None,
        sink: Callable[[bytes], None] | None = None,
    ) -> TransportReply:
        """One request over the protocol the URL names, to `address` when `hosts` gave one."""
        target = url if address is None else url.with_host(address)
        timeout = self.spec.request_timeout
        if url.scheme in ("ftp", "ftps"):
            user, password = self._account_for(url)
            reply = await ftp_request(
                method,
                target.with_user(None),
                user=user,
                password=password,
                source_ip=self._address,
                timeout=timeout,
                data=data,
                limit=limit,
                cafile=self.spec.cacert,
            )
        elif url.scheme == "tftp":
            reply = await tftp_request(
                method, target, source_ip=self._address, timeout=timeout, limit=limit, data=data
            )
        else:
            return await self._http(method, url, target, stage, data, headers, limit, sink)
        self._bytes_up += len(data or b"")
        self._bytes_down += len(reply.body)
        if sink is None:
            return reply
        sink(reply.body)
        return TransportReply(reply.status, b"")

    async def _http(
        self,
        method: str,
        url: URL,
        target: URL,
        stage: str,
        data: bytes | None,
        headers: Mapping[str, str] | None,
        limit: int | None,
        sink: Callable[[bytes], None] | None = None,
    ) -> TransportReply:
        """HTTP(S) to `target`; when that is an address for `url`'s name, TLS proves the name."""
        all_headers = {"User-Agent": self._user_agent(stage), **(headers or {})}
        if url.user is not None or (self.spec.user and self._is_own_server(url)):
            all_headers["Authorization"] = _basic(*self._account_for(url))
        server_hostname = None
        if target.host != url.host:
            all_headers["Host"] = url.host_port_subcomponent or ""
            server_hostname = url.host if url.scheme == "https" else None
        session = self._ensure_session()
        async with session.request(
            method,
            target.with_user(None),
            data=data,
            headers=all_headers,
            allow_redirects=False,
            server_hostname=server_hostname,
        ) as response:
            if sink is not None:
                async for chunk in response.content.iter_chunked(SINK_CHUNK):
                    self._bytes_down += len(chunk)
                    sink(chunk)
                body = b""
            elif limit is None:
                body = await response.read()
            else:
                body = await _read_at_most(response, limit)
                response.close()
        self._bytes_up += len(data or b"")
        self._bytes_down += len(body)
        return TransportReply(response.status, body)

    def _user_agent(self, stage: str) -> str:
        serial = self.spec.mac if self.settings.value("device.prov.tagSerialNo") == "1" else None
        identity = self._identity
        return format_user_agent(
            identity.family, identity.model_token, self._firmware, stage, serial
        )

    def _account_for(self, url: URL) -> tuple[str, str]:
        """The URL's own credentials, else the spec's for its own servers.

        FTP without either logs in with the factory account (phones.md section 2).
        """
        if url.user is not None:
            return url.user, url.password or ""
        if self.spec.user and self._is_own_server(url):
            return self.spec.user, self.spec.password
        if url.scheme in ("ftp", "ftps"):
            return FACTORY_FTP_ACCOUNT, FACTORY_FTP_ACCOUNT
        return self.spec.user, self.spec.password

    def _is_own_server(self, url: URL) -> bool:
        """Credentials go only to the provisioning servers, never to another host."""
        return any(url.origin() == server.base.origin() for server in self._servers)

    def _ensure_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            tls: ssl.SSLContext | bool = True
            if self.spec.cacert:
                try:
                    tls = _client_context(self.spec.cacert)
                except (OSError, ssl.SSLError) as exc:
                    raise _Abort(f"cannot load the CA file {self.spec.cacert}: {exc}") from None
            connector = aiohttp.TCPConnector(
                local_addr=(self._address, 0), ssl=tls, limit=1, force_close=True
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                # A stall limit, not a total one: a phone downloading firmware beside
                # hundreds of others is slow, not stuck (bench/bench_upgrade.py).
                timeout=aiohttp.ClientTimeout(
                    total=None,
                    sock_connect=self.spec.request_timeout,
                    sock_read=self.spec.request_timeout,
                ),
                cookie_jar=aiohttp.DummyCookieJar(),
            )
        return self._session

    def _schedule_polling(self) -> None:
        running = self._poll_task is not None and not self._poll_task.done()
        if not running and self._state != "idle" and self.next_poll_delay() is not None:
            self._poll_task = asyncio.create_task(self._poll_loop(), name=f"poll-{self.mac}")

    async def _poll_loop(self) -> None:
        while (delay := self.next_poll_delay()) is not None:
            await self._clock.sleep(delay)
            await self.poll_now()

    async def _stop_polling(self) -> None:
        task, self._poll_task = self._poll_task, None
        if task is not None and task is not asyncio.current_task():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _start_listeners(self) -> None:
        """REST (for models that have it) and SIP on the phone's own address.

        A port that cannot be bound is an error of this boot, like any other;
        a phone DHCP gave no address has nowhere to listen.
        """
        ip = self._address
        if ip == DHCP_ADDRESS:
            return
        scheme = self.rest_auth_scheme
        if self._rest_port is not None and scheme is not None:
            server = PhoneWebServer(
                self._rest,
                scheme=scheme,
                clock=self._clock,
                processing=self.spec.rest_processing,
                facts=self._facts,
                on_action=self._on_rest_action,
                on_record=self._rest_records.append,
            )
            try:
                self._rest_port = await server.start(ip, self._rest_port)
                self._web = server
            except OSError as exc:
                self._errors.append(f"cannot serve REST on {ip}:{self._rest_port}: {exc}")
        if self._sip_port is not None:
            listener = SipListener(self._on_check_sync)
            try:
                self._sip_port = await listener.start(ip, self._sip_port)
                self._sip = listener
            except OSError as exc:
                self._errors.append(f"cannot listen for SIP on {ip}:{self._sip_port}: {exc}")

    async def _stop_listeners(self) -> None:
        """Offline: REST connections are refused and NOTIFYs go unanswered."""
        self._online = False
        server, self._web = self._web, None
        listener, self._sip = self._sip, None
        if server is not None:
            await server.close()
        if listener is not None:
            await listener.close()

    def _facts(self) -> DeviceFacts:
        return DeviceFacts(
            model=self.spec.model,
            mac=self.spec.mac,
            part_number=self.spec.part_number,
            firmware=self._firmware,
            ip=self._address,
            provisioning_state=self._state,
            powered_on_at=self._powered_on_at or 0.0,
            last_restart_reason=self._restart_reason,
        )

    def _on_rest_action(self, action: str) -> None:
        """Carry out what a REST request asked for, after its answer went out."""
        if action == "update_configuration":
            self._check_syncs += 1
            self._spawn(self._reprovision(), "reprovision")
        elif action == "factory_reset":
            self._spawn(self._reboot("factory reset", safe=False), "reboot")
        else:
            self._spawn(self._reboot(f"REST {action}", safe=True), "reboot")

    def _on_check_sync(self, reboot: bool) -> None:
        """A check-sync NOTIFY was accepted (phones.md section 4)."""
        self._check_syncs += 1
        if reboot or self.settings.enabled(ALWAYS_REBOOT):
            self._spawn(self._reboot("check-sync", safe=True), "reboot")
        else:
            self._spawn(self._reprovision(), "reprovision")

    async def _reprovision(self) -> None:
        if not self._rebooting:
            await self.poll_now()

    async def _reboot(self, reason: str, *, safe: bool) -> None:
        """Offline for `reboot_seconds`, then a full boot; a safe one waits for calls to end."""
        if self._rebooting:
            return
        self._rebooting = True
        try:
            while safe and self._rest.calls:
                await self._clock.sleep(1.0)
            await self._stop_polling()
            await self._stop_listeners()
            self._rest.calls.clear()
            await self._clock.sleep(self.spec.reboot_seconds)
            self._restarts += 1
            self._restart_reason = reason
            await self.boot()
        finally:
            self._rebooting = False

    def _spawn(self, coroutine: Coroutine[Any, Any, None], what: str) -> None:
        task = asyncio.create_task(coroutine, name=f"{what}-{self.mac}")
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self._errors.append(f"simulator error: {task.exception()!r}")


async def _read_at_most(response: aiohttp.ClientResponse, limit: int) -> bytes:
    chunks: list[bytes] = []
    remaining = limit
    while remaining > 0:
        chunk = await response.content.read(remaining)
        if not chunk:
            break
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def _join(base: URL, name: str) -> URL:
    """`name` resolved against `base` (RFC 3986 section 5.2).

    urllib's join, under yarl's, resolves only the schemes it knows (not
    tftp or ftps): those go through an http stand-in, keeping their port.
    """
    joined = base.join(URL(name))
    if joined.is_absolute():
        return joined
    stand_in = base.with_scheme("http").join(URL(name))
    return stand_in.with_scheme(base.scheme).with_port(base.explicit_port)


def _basic(user: str, password: str) -> str:
    """HTTP basic credentials, the scheme phones.md section 2 names for managed deployments."""
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode("ascii")


def _is_set(raw: bytes, name: str) -> bool:
    """Whether the raw file sets `name="1"`: a `.set` companion (phones.md section 3)."""
    pattern = rb"(?<![A-Za-z0-9_.\-])" + re.escape(name.encode()) + rb"""\s*=\s*(["'])1\1"""
    return re.search(pattern, raw) is not None


def _stage_of(name: str) -> str:
    return "updater" if name.endswith("-boot.log") else "application"


def _shown(name: str) -> str:
    """A request name as recorded: absolute URLs without their credentials."""
    if "://" not in name:
        return name
    return str(URL(name).with_user(None))


def _why(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _seconds_of_day(text: str, default: int) -> int:
    match = _HHMM_RE.fullmatch(text.strip())
    if match is None:
        return default
    return int(match[1]) * 3600 + int(match[2]) * 60
