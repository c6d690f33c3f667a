"""Scheduled tasks: the pure rules (cloud.md "Scheduled tasks"; PDMS-E guide
"Controlling Devices via REST API").

- A task targets devices, device groups and/or sites; it runs on the union of
  their devices, each device once.
- It is executed now, at a time, or skipped (the phones pick the change up at
  their next poll).
- A device that cannot take the task is Not Applicable with a reason: a video
  bar cannot take a scheduled check-sync, every other type needs the phone's
  REST API, the relay must know the phone's address, and some relay must
  serve it (docs/agent-link.md "Which relay serves which phone").
Synchronous and free of SQL; `now` is always an argument.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from relay.cloud.rules.assignment import RelayPlace, relay_for
from relay.cloud.rules.errors import RuleError
from relay.proto.polycom.models import has_rest_api, is_video_bar
from relay.sync.messages import MAX_DATA_BYTES, TASK_TYPES, SyncError
from relay.sync.messages import check_options as check_wire_options

STATUSES = ("scheduled", "executing", "done")
WHEN_MODES = ("now", "at", "skip")
# The names PDMS-E shows in its task list ("Device Control: Reset", ...).
DEFAULT_NAMES: Mapping[str, str] = {
    "check_sync": "Apply provisioning changes",
    "reboot": "Device Control: Reboot",
    "reset": "Device Control: Reset",
    "set_parameters": "Device Control: Set Parameters",
    "dial": "Device Control: Dial Out",
    "get_config": "Get Device Configuration",
    "ad_password": "Change Device Active Directory Password",
    "capture_screen": "Capture Screen",
}
# Options that are secrets: stored for the agent, never shown back.
SECRET_OPTIONS: Mapping[str, tuple[str, ...]] = {"ad_password": ("password",)}
MASK = "********"
MAX_TASK_NAME = 128
MAX_TARGET_NAMES = 10_000
MAX_SCREEN_BYTES = MAX_DATA_BYTES
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

SKIPPED = "skipped: left to the phones' next poll"
VIDEO_BAR = "video bar cannot take a scheduled check-sync; it applies the change at its next poll"
NO_ADDRESS = "device address unknown: it has never contacted the service"
NO_MAC = "device has no MAC address; the relay reaches phones by MAC"
GONE = "device no longer exists"

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True, slots=True)
class Targets:
    """What a task names; device entries are device keys (MACs or serials)."""

    devices: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    sites: tuple[str, ...] = ()

    def to_wire(self) -> dict[str, list[str]]:
        return {
            "devices": list(self.devices),
            "groups": list(self.groups),
            "sites": list(self.sites),
        }

    @classmethod
    def from_stored(cls, raw: Mapping[str, Sequence[str]]) -> Targets:
        return cls(tuple(raw["devices"]), tuple(raw["groups"]), tuple(raw["sites"]))


@dataclass(frozen=True, slots=True)
class When:
    """`mode` now|at|skip; `run_at` is the UTC epoch time the task becomes due."""

    mode: str
    run_at: float


@dataclass(frozen=True, slots=True)
class DeviceFacts:
    """What deciding a job needs to know of one device."""

    id: str
    mac: str | None
    model: str | None
    type: str | None
    firmware: str | None
    private_ip: str | None
    public_ip: str | None
    site: str | None

    @property
    def address(self) -> str | None:
        """The relay is on the phones' network, so the private address comes first."""
        return self.private_ip or self.public_ip

    @property
    def rest(self) -> bool:
        return has_rest_api(self.model or "", self.firmware)


@dataclass(frozen=True, slots=True)
class Decision:
    """A job for `relay_id`, or Not Applicable for `reason`."""

    relay_id: str | None
    reason: str = ""


def check_type(value: object) -> str:
    if not isinstance(value, str) or value not in TASK_TYPES:
        raise RuleError("invalid_type", f"type must be one of {', '.join(TASK_TYPES)}", "type")
    return value


def check_task_name(value: object, task_type: str) -> str:
    """Any printable text; a task left unnamed is named after its type."""
    if value is None or value == "":
        return DEFAULT_NAMES[task_type]
    if not isinstance(value, str) or len(value) > MAX_TASK_NAME or _CONTROL.search(value):
        raise RuleError(
            "invalid_name",
            f"name must be printable text of at most {MAX_TASK_NAME} characters",
            "name",
        )
    return value.strip() or DEFAULT_NAMES[task_type]


def check_options(task_type: str, raw: object) -> dict[str, Any]:
    """The agent link's own option check, so the cloud refuses what the agent would."""
    try:
        return check_wire_options(task_type, {} if raw is None else raw)
    except SyncError as exc:
        raise RuleError("invalid_options", str(exc), "options") from exc


def masked_options(task_type: str, options: Mapping[str, Any]) -> dict[str, Any]:
    """Options as shown to administrators: secrets replaced by a mask."""
    secret = SECRET_OPTIONS.get(task_type, ())
    return {k: (MASK if k in secret else v) for k, v in options.items()}


def _names(raw: Mapping[str, Any], key: str) -> tuple[str, ...]:
    value = raw.get(key, [])
    where = f"targets.{key}"
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise RuleError("invalid_targets", f"{where} must be a list of names", where)
    if len(value) > MAX_TARGET_NAMES:
        raise RuleError("invalid_targets", f"{where} lists more than {MAX_TARGET_NAMES}", where)
    return tuple(dict.fromkeys(value))


def check_targets(raw: object) -> Targets:
    """`{"devices": [...], "groups": [...], "sites": [...]}`, naming at least one."""
    if not isinstance(raw, Mapping):
        raise RuleError(
            "invalid_targets", "targets must be an object of devices, groups, sites", "targets"
        )
    extra = sorted(set(raw) - {"devices", "groups", "sites"})
    if extra:
        raise RuleError(
            "invalid_targets", f"targets.{extra[0]} is not devices, groups or sites", "targets"
        )
    devices = tuple(dict.fromkeys(d.strip().lower() for d in _names(raw, "devices")))
    targets = Targets(devices, _names(raw, "groups"), _names(raw, "sites"))
    if not (targets.devices or targets.groups or targets.sites):
        raise RuleError(
            "no_targets", "a task targets at least one device, group or site", "targets"
        )
    return targets


def parse_when(raw: object, now: float) -> When:
    """`now`, `skip`, or an ISO 8601 time with its time zone (kept as UTC epoch)."""
    if raw is None or raw == "now":
        return When("now", now)
    if raw == "skip":
        return When("skip", now)
    message = "when must be 'now', 'skip' or an ISO 8601 time with a time zone"
    if not isinstance(raw, str):
        raise RuleError("invalid_when", message, "when")
    try:
        moment = dt.datetime.fromisoformat(raw)
    except ValueError as exc:
        raise RuleError("invalid_when", f"{message}: {raw!r}", "when") from exc
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise RuleError(
            "invalid_when", f"{raw!r} has no time zone; add one (e.g. Z or +02:00)", "when"
        )
    return When("at", moment.timestamp())


def utc(epoch: float) -> str:
    return dt.datetime.fromtimestamp(epoch, dt.UTC).isoformat().replace("+00:00", "Z")


def iso(epoch: float | None) -> str | None:
    return None if epoch is None else utc(epoch)


def when_out(mode: str, run_at: float) -> str:
    """The `when` of a task as it was asked for: now, skip, or the UTC time."""
    return utc(run_at) if mode == "at" else mode


def resolve_targets(
    targets: Targets,
    devices: Sequence[str],
    group_members: Mapping[str, Sequence[str]],
    site_members: Mapping[str, Sequence[str]],
) -> list[str]:
    """The union of the named devices and the members of the named groups and sites,
    each device once, in the order first named. `devices` are the ids the task's
    device keys resolved to; names that no longer exist add nothing."""
    out: dict[str, None] = dict.fromkeys(devices)
    for group in targets.groups:
        out.update(dict.fromkeys(group_members.get(group, ())))
    for site in targets.sites:
        out.update(dict.fromkeys(site_members.get(site, ())))
    return list(out)


def decide(
    task_type: str,
    device: DeviceFacts,
    relays: Sequence[RelayPlace],
    site_specific: Collection[str],
) -> Decision:
    """Which relay runs the task on this device, or why none can (cloud.md "Scheduled
    tasks": video bars and check-sync; PDMS-E: device control needs the REST API and
    a relay that reaches the device)."""
    if task_type == "check_sync":
        if is_video_bar(device.model or "", device.type):
            return Decision(None, VIDEO_BAR)
    elif not device.rest:
        model = device.model or "unknown model"
        firmware = device.firmware or "unknown firmware"
        return Decision(None, f"no REST API on this device ({model}, {firmware})")
    if device.mac is None:
        return Decision(None, NO_MAC)
    if device.address is None:
        return Decision(None, NO_ADDRESS)
    relay = relay_for(device.mac, device.site, relays, site_specific)
    if relay is None:
        return Decision(None, f"no relay serves site {device.site or 'Internet'}")
    return Decision(relay)


@dataclass(frozen=True, slots=True)
class Tally:
    """A task's result counts (cloud.md: Total / Success / Failure / In Progress,
    and per device Not Applicable)."""

    total: int
    success: int
    failure: int
    in_progress: int
    not_applicable: int

    def to_wire(self) -> dict[str, int]:
        return {
            "total": self.total,
            "success": self.success,
            "failure": self.failure,
            "in_progress": self.in_progress,
            "not_applicable": self.not_applicable,
        }


def tally(results: Iterable[str | None]) -> Tally:
    """Count per-device results; None is a job still in progress."""
    counts: dict[str | None, int] = {"success": 0, "failure": 0, "not_applicable": 0, None: 0}
    for result in results:
        counts[result] = counts.get(result, 0) + 1
    return Tally(
        total=sum(counts.values()),
        success=counts["success"],
        failure=counts["failure"],
        in_progress=counts[None],
        not_applicable=counts["not_applicable"],
    )


def decode_screen(data: Mapping[str, Any]) -> bytes:
    """The PNG of a capture_screen result (`image_png`, base64), at most 4 MiB.

    Raises ValueError with what is wrong, so the result can say so.
    """
    raw = data.get("image_png")
    if not isinstance(raw, str) or not raw:
        raise ValueError("the result carries no image_png")
    if len(raw) > (MAX_SCREEN_BYTES + 2) // 3 * 4:
        raise ValueError(f"the screen capture is larger than {MAX_SCREEN_BYTES} bytes")
    try:
        image = base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValueError("image_png is not base64") from exc
    if not image.startswith(PNG_SIGNATURE):
        raise ValueError("image_png is not a PNG image")
    return image
