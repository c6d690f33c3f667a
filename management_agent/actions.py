"""Carrying out one job on its phone (PDMS-E guide "Controlling Devices via REST API").

Each task type of relay.sync.messages.TASK_TYPES maps to the phone REST calls
of phones.md section 4; check-sync also works without REST, by SIP NOTIFY.
`execute` never raises (except CancelledError): whatever happens becomes a
JobResult, since the agent must report every job exactly once.

Decisions where the spec is silent:
- check-sync with `reboot` on a REST phone is `safeReboot`: the phone reads
  its configuration while it boots, which is what `;reboot=true` asks for.
  A REST phone whose API is switched off (HTTP 404, `apps.restapi.enabled`
  not 1) gets the SIP NOTIFY instead.
- Every other task needs the REST API (the guide: "a device must support REST
  API"), so on a phone without it the result is not_applicable.
- dial is a success only when callStatus then shows a call (to `dest` if one
  matches, else any call): the phone accepting the request is not enough.
- get_config `all` is provisioning, local and web ("All (except device
  settings)"); Source values compare case-insensitively.
- capture_screen refuses anything that is not a PNG; HTTP 403 there means the
  phone's screen capture is off (`up.screenCapture.enabled`).
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from relay.logs import event
from relay.sync.messages import MAX_TEXT, Job, JobResult, chunks

from .monitoring import CALL_STATUS, call_status
from .phone_client import PhoneClient, PhoneError
from .sip_notify import SipNotifier

NO_REST = "no REST API on this device"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MAX_RUNNING = 50_000

UPDATE_CONFIGURATION = "/api/v1/mgmt/updateConfiguration"
SAFE_REBOOT = "/api/v1/mgmt/safeReboot"
CONFIG_SET = "/api/v1/mgmt/config/set"
DIAL = "/api/v1/callctrl/dial"
RUNNING_CONFIG = "/api/v1/mgmt/device/runningConfig"
CAPTURE_SCREEN = "/captureScreen"

# The guide's five reset options -> phones.md section 4 paths.
RESET_PATHS: Mapping[str, str] = {
    "web": "/api/v1/mgmt/configReset/web",
    "local": "/api/v1/mgmt/configReset/local",
    "device": "/api/v1/mgmt/configReset/device",
    "all": "/api/v1/mgmt/configReset",
    "factory": "/api/v1/mgmt/factoryReset",
}
# get_config scope -> the runningConfig Source values it keeps.
CONFIG_SOURCES: Mapping[str, tuple[str, ...]] = {
    "provisioning": ("config_files",),
    "local": ("local",),
    "web": ("web",),
    "device": ("device",),
    "all": ("config_files", "local", "web"),
}

log = logging.getLogger("management_agent.actions")

Data = dict[str, Any]


class _Outcome(Exception):
    """A job ends other than in success; `data` says how far it got."""

    def __init__(self, result: str, reason: str, data: Data | None = None) -> None:
        super().__init__(reason)
        self.result = result
        self.reason = reason
        self.data = data or {}


async def execute(job: Job, client: PhoneClient, sip: SipNotifier) -> JobResult:
    """Do `job` on its phone and say how it went; never raises but CancelledError."""
    handler = _HANDLERS[job.type]
    try:
        if job.type != "check_sync" and not job.device.rest:
            raise _Outcome("not_applicable", NO_REST)
        data = await handler(job, client, sip)
    except _Outcome as outcome:
        return _result(job, outcome.result, outcome.reason, outcome.data)
    except PhoneError as exc:
        return _result(job, "failure", exc.reason)
    except Exception as exc:
        event(
            log,
            "job_crashed",
            logging.ERROR,
            task_id=job.task_id,
            job=job.seq,
            type=job.type,
            error=type(exc).__name__,
        )
        return _result(job, "failure", f"internal error in the relay agent ({type(exc).__name__})")
    return _result(job, "success", "", data)


def _result(job: Job, result: str, reason: str, data: Data | None = None) -> JobResult:
    return JobResult(
        job=job.seq,
        task_id=job.task_id,
        device=job.device.mac,
        result=result,
        reason=reason[:MAX_TEXT],
        data=data or {},
    )


async def _check_sync(job: Job, client: PhoneClient, sip: SipNotifier) -> Data:
    reboot = bool(job.options.get("reboot", False))
    if job.device.rest:
        try:
            await client.call(job.device, "POST", SAFE_REBOOT if reboot else UPDATE_CONFIGURATION)
            return {"via": "rest"}
        except PhoneError as exc:
            if exc.http != 404:
                raise
    await sip.check_sync(job.device, reboot=reboot)
    return {"via": "sip"}


async def _reboot(job: Job, client: PhoneClient, _sip: SipNotifier) -> Data:
    await client.call(job.device, "POST", SAFE_REBOOT)
    return {}


async def _reset(job: Job, client: PhoneClient, _sip: SipNotifier) -> Data:
    await client.call(job.device, "POST", RESET_PATHS[job.options["scope"]])
    return {}


async def _set_parameters(job: Job, client: PhoneClient, _sip: SipNotifier) -> Data:
    """config/set takes at most 20 names per request (phones.md section 4)."""
    values: Mapping[str, str] = job.options["parameters"]
    parts = chunks(values)
    applied = 0
    for index, part in enumerate(parts, start=1):
        try:
            await client.call(job.device, "POST", CONFIG_SET, part)
        except PhoneError as exc:
            raise _Outcome(
                "failure",
                f"chunk {index} of {len(parts)} failed ({applied} of {len(values)} "
                f"parameters applied): {exc.reason}",
                {"applied": applied, "failed_chunk": index},
            ) from None
        applied += len(part)
    return {"applied": applied}


async def _dial(job: Job, client: PhoneClient, _sip: SipNotifier) -> Data:
    dest: str = job.options["dest"]
    request = {"Dest": dest, "Line": str(job.options["line"]), "Type": job.options["dial_type"]}
    await client.call(job.device, "POST", DIAL, request)
    calls = call_status(await client.call(job.device, "GET", CALL_STATUS))
    if not calls:
        raise _Outcome("failure", "the phone accepted the dial but shows no call")
    matching = [call for call in calls if dest in call.remote_number] or list(calls)
    return {"call": matching[0].to_wire()}


async def _get_config(job: Job, client: PhoneClient, _sip: SipNotifier) -> Data:
    wanted = CONFIG_SOURCES[job.options["scope"]]
    running = running_config(await client.call(job.device, "GET", RUNNING_CONFIG))
    kept = {name: entry for name, entry in running.items() if entry[1].lower() in wanted}
    return {
        "parameters": {name: value for name, (value, _source) in kept.items()},
        "sources": {name: source for name, (_value, source) in kept.items()},
    }


def running_config(data: object) -> dict[str, tuple[str, str]]:
    """`runningConfig` -> name: (value, source).

    The phones answer `{name: {"Value", "Source"}}` like config/get; a list of
    `{"Name", "Value", "Source"}` entries is accepted too.
    """
    if isinstance(data, dict):
        entries = [(name, entry) for name, entry in data.items()]
    elif isinstance(data, list):
        entries = [(_field(entry, "Name"), entry) for entry in data]
    else:
        raise PhoneError("bad answer from the phone: runningConfig is not an object")
    if len(entries) > MAX_RUNNING:
        raise PhoneError(f"bad answer from the phone: runningConfig holds over {MAX_RUNNING}")
    out: dict[str, tuple[str, str]] = {}
    for name, entry in entries:
        if not isinstance(name, str) or not name or len(name) > 256:
            raise PhoneError("bad answer from the phone: a runningConfig name is not text")
        out[name] = (_field(entry, "Value"), _field(entry, "Source"))
    return out


def _field(entry: object, key: str) -> str:
    if not isinstance(entry, dict):
        raise PhoneError("bad answer from the phone: a runningConfig entry is not an object")
    value = entry.get(key, "")
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise PhoneError(f"bad answer from the phone: a runningConfig {key} is not text")
    return str(value)


async def _ad_password(job: Job, client: PhoneClient, _sip: SipNotifier) -> Data:
    """The password goes to the phone only; the result names the line, never the value."""
    line = job.options["line"]
    await client.call(
        job.device, "POST", CONFIG_SET, {f"reg.{line}.auth.password": job.options["password"]}
    )
    return {"line": line}


async def _capture_screen(job: Job, client: PhoneClient, _sip: SipNotifier) -> Data:
    try:
        image = await client.fetch(job.device, CAPTURE_SCREEN)
    except PhoneError as exc:
        if exc.http == 403:
            raise _Outcome(
                "failure",
                "phone answered HTTP 403: screen capture is off "
                "(set up.screenCapture.enabled=1 on the phone)",
            ) from None
        raise
    if not image.startswith(PNG_SIGNATURE):
        raise _Outcome("failure", "bad answer from the phone: the screen capture is not a PNG")
    return {"image_png": base64.b64encode(image).decode("ascii")}


Handler = Callable[[Job, PhoneClient, SipNotifier], Awaitable[Data]]

_HANDLERS: Mapping[str, Handler] = {
    "check_sync": _check_sync,
    "reboot": _reboot,
    "reset": _reset,
    "set_parameters": _set_parameters,
    "dial": _dial,
    "get_config": _get_config,
    "ad_password": _ad_password,
    "capture_screen": _capture_screen,
}
