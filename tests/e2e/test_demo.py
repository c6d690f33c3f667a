"""`relay up --demo N` as a user runs it: the venv's `relay` script in a subprocess.

The JSON ready line comes first; the simulated phones then boot against the
embedded provisioning service and one `{"event": "demo", ...}` line reports the
result (progress is for people: `--json` does not print it). SIGTERM still ends
it with 0, and nothing else reaches stdout.
"""

from __future__ import annotations

import json
import signal
from collections.abc import Callable
from typing import Any

from tests.e2e.conftest import RelayProcess, http

RelayUp = Callable[..., RelayProcess]
DEMO_TIMEOUT = 45.0


def _events(out: bytes) -> list[dict[str, Any]]:
    """Every complete stdout line, each one JSON object."""
    complete = out[: out.rfind(b"\n") + 1]
    events = [json.loads(line) for line in complete.splitlines() if line.strip()]
    assert all(isinstance(e, dict) for e in events), events
    return events


def _has_demo_result(out: bytes) -> bool:
    return any(e.get("event") == "demo" for e in _events(out))


def test_demo_provisions_every_phone_and_reports_once(relay_up: RelayUp) -> None:
    relay = relay_up("--demo", "10")
    assert relay.facts["event"] == "ready"
    out = relay.read_stdout_until(_has_demo_result, timeout=DEMO_TIMEOUT)
    events = _events(out)
    assert [e["event"] for e in events] == ["ready", "demo"], events
    assert events[0] == relay.facts
    result = events[1]
    assert result["phones"] == 10
    assert result["provisioned"] == 10, result
    assert result["failed"] == 0, result
    assert result["errors"] == [], result

    # The phones are in the control plane, provisioned, with their model and firmware.
    facts = relay.facts
    listing = http("GET", f"{facts['api']}/devices?limit=100", facts["token"])
    assert listing.status == 200, listing.text
    devices = listing.body["devices"]
    assert len(devices) == 10
    for device in devices:
        assert device["source"] == "auto"
        assert device["last_result"] == "SUCCESS", device
        assert device["model"] and device["firmware"], device

    assert relay.stop(signal.SIGTERM) == 0
    everything = relay.read_stdout_until(lambda _: False, timeout=5)  # to EOF
    assert everything.endswith(b"\n")
    assert _events(everything) == events
