"""The monitoring poll: what a phone's REST API says about it (docs/agent-link.md "Devices
to monitor", cloud.md "Device monitor").

Each phone gets three GETs, one after the other (the client serializes per
phone anyway): `device/info`, `lineInfo` and `callStatus` (phones.md section 4).
The JSON field mapping of each answer is a small pure function with size and
shape checks, so a malformed answer is a PhoneError tested without sockets.

Decisions where the spec is silent:
- A phone without the REST API is not polled at all: `poll` returns None and
  `poll_all` reports nothing for it. The relay cannot tell whether it is up,
  and an `online: false` check newer than its last provisioning contact would
  make the cloud show a working phone offline (relay/cloud/rules/monitor.py);
  only its provisioning contacts show it online, as before relays existed.
- Only a failure to reach the phone ("device offline: ...") is
  `online: false`. A phone that answers but refuses (4010 factory password,
  wrong credentials, HTTP 404 with the API disabled) is online, with the
  reason and whatever was learned before the refusal.
- `last_restart` is the phone's `LastRestart` when it gives a plausible one
  (not before 2000, when phones without SNTP think it is, and not after
  `now`); otherwise `now - uptime`.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from relay.sync.messages import MAX_CALLS, MAX_LINES, MAX_TEXT, Call, DeviceStatus, Line, Target

from .phone_client import PhoneClient, PhoneError

DEVICE_INFO = "/api/v1/mgmt/device/info"
LINE_INFO = "/api/v1/mgmt/lineInfo"
CALL_STATUS = "/api/v1/webCallControl/callStatus"
# 2000-01-01T00:00:00Z: an earlier LastRestart comes from a phone whose clock was never set.
EARLIEST_PLAUSIBLE = 946684800.0
MAX_UPTIME = 100 * 365 * 86400.0

_DAYS_CLOCK = re.compile(r"(\d{1,6}) Days? (\d{1,2}):(\d{2}):(\d{2})", re.IGNORECASE)
_NUMBER = re.compile(r"\d{1,12}(\.\d{1,6})?")

OnStatus = Callable[[DeviceStatus], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    """The fields of `device/info` monitoring uses."""

    firmware: str
    uptime: float | None
    last_restart: float | None


def _bad(what: str) -> PhoneError:
    return PhoneError(f"bad answer from the phone: {what}")


def _object(data: object, where: str) -> Mapping[str, Any]:
    if not isinstance(data, dict):
        raise _bad(f"{where} is not an object")
    return data


def _items(data: object, where: str, cap: int) -> list[Mapping[str, Any]]:
    """A list of objects; one object alone counts as a list of one (v1 answers on
    some firmware), nothing at all as an empty list."""
    if data is None or data == "":
        return []
    items = [data] if isinstance(data, dict) else data
    if not isinstance(items, list):
        raise _bad(f"{where} is not a list")
    if len(items) > cap:
        raise _bad(f"{where} holds {len(items)} entries; at most {cap}")
    return [_object(item, f"{where} entry") for item in items]


def _text(raw: Mapping[str, Any], key: str, where: str) -> str:
    """A string field; phones send every value as a string, numbers are accepted too."""
    value = raw.get(key, "")
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise _bad(f"{where}.{key} is not text")
    text = str(value)
    if len(text) > MAX_TEXT:
        raise _bad(f"{where}.{key} is longer than {MAX_TEXT} characters")
    return text


def _seconds(raw: Mapping[str, Any], key: str, where: str) -> float | None:
    text = _text(raw, key, where).strip()
    if not text:
        return None
    if _NUMBER.fullmatch(text) is None or float(text) > MAX_UPTIME:
        raise _bad(f"{where}.{key} is not a number of seconds")
    return float(text)


def device_info(data: object) -> DeviceInfo:
    """`device/info` -> firmware, uptime seconds and the phone's own restart time.

    Uptime comes from `UpTime` (seconds) or, on firmware without it, from
    `UpTimeSinceLastReboot` ("1 Day 20:40:36").
    """
    info = _object(data, "device/info")
    firmware = _text(info, "FirmwareRelease", "device/info") or _text(
        info, "Firmware", "device/info"
    )
    uptime = _seconds(info, "UpTime", "device/info")
    if uptime is None:
        clock = _text(info, "UpTimeSinceLastReboot", "device/info").strip()
        if clock:
            match = _DAYS_CLOCK.fullmatch(clock)
            if match is None:
                raise _bad("device/info.UpTimeSinceLastReboot is not `N Day H:MM:SS`")
            days, hours, minutes, seconds = (int(part) for part in match.groups())
            uptime = float(((days * 24 + hours) * 60 + minutes) * 60 + seconds)
    restart = _text(info, "LastRestart", "device/info").strip()
    return DeviceInfo(firmware=firmware, uptime=uptime, last_restart=_epoch(restart))


def _epoch(text: str) -> float | None:
    """ISO 8601 (`2024-05-01T12:00:00Z`) -> epoch seconds; no zone means UTC."""
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise _bad("device/info.LastRestart is not an ISO 8601 time") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def line_info(data: object) -> tuple[Line, ...]:
    """`lineInfo` -> lines; RegistrationStatus "Registered" (any case) or else unregistered."""
    lines: list[Line] = []
    for raw in _items(data, "lineInfo", MAX_LINES):
        number = _text(raw, "LineNumber", "lineInfo").strip()
        if not number.isdigit() or not 1 <= int(number) <= MAX_LINES:
            raise _bad(f"lineInfo.LineNumber must be 1-{MAX_LINES}")
        registered = _text(raw, "RegistrationStatus", "lineInfo").strip().lower() == "registered"
        lines.append(
            Line(
                number=int(number),
                registration="registered" if registered else "unregistered",
                sip_address=_text(raw, "SIPAddress", "lineInfo"),
                user_id=_text(raw, "UserID", "lineInfo"),
                proxy=_text(raw, "ProxyAddress", "lineInfo"),
            )
        )
    return tuple(lines)


def call_status(data: object) -> tuple[Call, ...]:
    """`callStatus` -> calls with their state, remote party and duration."""
    calls: list[Call] = []
    for raw in _items(data, "callStatus", MAX_CALLS):
        state = _text(raw, "CallState", "callStatus").strip()
        if not state:
            raise _bad("callStatus entry has no CallState")
        calls.append(
            Call(
                state=state,
                remote_name=_text(raw, "RemotePartyName", "callStatus"),
                remote_number=_text(raw, "RemotePartyNumber", "callStatus"),
                duration=_seconds(raw, "DurationInSeconds", "callStatus") or 0.0,
            )
        )
    return tuple(calls)


def last_restart(info: DeviceInfo, now: float) -> float | None:
    """The phone's LastRestart when plausible, else `now - uptime` (module docstring)."""
    if info.last_restart is not None and EARLIEST_PLAUSIBLE <= info.last_restart <= now:
        return info.last_restart
    if info.uptime is None:
        return None
    return max(0.0, now - info.uptime)


async def poll(target: Target, client: PhoneClient, now: float) -> DeviceStatus | None:
    """One phone's status; None for a phone without the REST API (module docstring)."""
    if not target.rest:
        return None
    info: DeviceInfo | None = None
    lines: tuple[Line, ...] = ()
    calls: tuple[Call, ...] = ()
    try:
        info = device_info(await client.call(target, "GET", DEVICE_INFO))
        lines = line_info(await client.call(target, "GET", LINE_INFO))
        calls = call_status(await client.call(target, "GET", CALL_STATUS))
    except PhoneError as exc:
        return DeviceStatus(
            device=target.mac,
            online=not exc.offline,
            checked=now,
            reason=exc.reason[:MAX_TEXT],
            lines=lines,
            uptime=None if info is None else info.uptime,
            last_restart=None if info is None else last_restart(info, now),
            firmware="" if info is None else info.firmware,
        )
    return DeviceStatus(
        device=target.mac,
        online=True,
        checked=now,
        lines=lines,
        calls=calls,
        uptime=info.uptime,
        last_restart=last_restart(info, now),
        firmware=info.firmware,
    )


async def poll_all(
    targets: Iterable[Target], client: PhoneClient, now: float, on_status: OnStatus
) -> None:
    """Poll every phone, handing each status to `on_status` as soon as it is known.

    As many workers as the client talks to phones at once pull from one queue, so a
    large watchlist costs that many tasks, not one per phone. Cancelling stops them all;
    an error from `on_status` stops the poll and is raised.
    """
    queue = list(targets)
    pending = iter(queue)

    async def worker() -> None:
        for target in pending:
            status = await poll(target, client, now)
            if status is not None:
                await on_status(status)

    workers = [asyncio.create_task(worker()) for _ in range(min(client.concurrency, len(queue)))]
    try:
        await asyncio.gather(*workers)
    finally:
        for task in workers:
            task.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
