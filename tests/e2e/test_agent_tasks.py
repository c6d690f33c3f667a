"""Issue 4 "Done when": from the API, run each task type on a group of simulated
phones and watch the results and the device monitor change.

One `relay up --demo` process (the embedded cloud, its registered agent and
simulated phones serving the phone REST API) is shared by the tests of this
module; each test runs its own task.
"""

from __future__ import annotations

import json
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import (
    RelayProcess,
    clean_env,
    http,
    relay_command,
    run_relay,
)

PHONES = 6
TASK_TIMEOUT = 60.0


def _wait(check: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


@pytest.fixture(scope="module")
def relay(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RelayProcess]:
    home = tmp_path_factory.mktemp("agent-e2e")
    stderr_path = home / "stderr.log"
    with stderr_path.open("wb") as stderr:
        proc = subprocess.Popen(
            [
                *relay_command(),
                "up",
                "--json",
                "--free-ports",
                "--demo",
                str(PHONES),
                "--heartbeat-seconds",
                "2",
                "--monitor-seconds",
                "3",
                "--data-dir",
                str(home / "data"),
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=stderr,
            env=clean_env(home),
            cwd=home,
        )
    process = RelayProcess(proc, stderr_path, home / "data")
    try:
        process.ready()
        process.read_stdout_until(lambda out: b'"event": "demo"' in out, timeout=60)
        yield process
    finally:
        process.close()


def _api(relay: RelayProcess, method: str, path: str, body: Any = None) -> Any:
    reply = http(method, relay.facts["api"] + path, relay.facts["token"], body)
    assert reply.status < 300, (method, path, reply.status, reply.text)
    return reply.body


def _devices(relay: RelayProcess) -> list[dict[str, Any]]:
    return list(_api(relay, "GET", "/devices?limit=100")["devices"])


def _rest_phones(relay: RelayProcess) -> list[str]:
    """MACs of the demo phones that have a REST API (SoundPoint/SoundStation do not)."""
    return [d["mac"] for d in _devices(relay) if not d["model"].startswith(("SPIP", "SSIP"))]


def _run(relay: RelayProcess, body: dict[str, Any]) -> dict[str, Any]:
    created = _api(relay, "POST", "/tasks", {"name": body["type"], "when": "now", **body})
    task_id = created["id"]

    def done() -> dict[str, Any] | None:
        task = _api(relay, "GET", f"/tasks/{task_id}")
        return task if task["status"] == "done" else None

    task: dict[str, Any] = _wait(done, TASK_TIMEOUT, f"task {body['type']} to finish")
    assert task["total"] == len(task["results"])
    assert task["in_progress"] == 0
    return task


def _successes(task: dict[str, Any]) -> set[str]:
    return {r["device"] for r in task["results"] if r["result"] == "success"}


def test_the_embedded_relay_is_registered_and_active(relay: RelayProcess) -> None:
    facts = relay.facts
    assert facts["relay_id"] and facts["pin"]
    relays = _api(relay, "GET", "/relays")
    (embedded,) = [r for r in relays if r["id"] == facts["relay_id"]]
    assert embedded["status"] == "active"
    assert embedded["last_heartbeat"]


def test_check_sync_reaches_every_phone_by_rest_or_sip(relay: RelayProcess) -> None:
    macs = [d["mac"] for d in _devices(relay)]
    task = _run(relay, {"type": "check_sync", "targets": {"devices": macs}})
    assert task["success"] == len(macs), task["results"]


def test_set_parameters_then_get_config_shows_them(relay: RelayProcess) -> None:
    phones = _rest_phones(relay)[:2]
    values = {f"feature.test.{i}": str(i) for i in range(25)}
    task = _run(
        relay,
        {
            "type": "set_parameters",
            "targets": {"devices": phones},
            "options": {"parameters": values},
        },
    )
    assert _successes(task) == set(phones), task["results"]
    got = _run(
        relay,
        {"type": "get_config", "targets": {"devices": phones}, "options": {"scope": "local"}},
    )
    for result in got["results"]:
        assert result["result"] == "success", result
        assert result["data"]["parameters"]["feature.test.24"] == "24"


def test_dial_shows_a_call_in_the_device_monitor(relay: RelayProcess) -> None:
    phone = _rest_phones(relay)[0]
    line = {"reg.1.address": "2000@pbx.example.com", "reg.1.server.1.address": "pbx.example.com"}
    configured = _run(
        relay,
        {
            "type": "set_parameters",
            "targets": {"devices": [phone]},
            "options": {"parameters": line},
        },
    )
    assert _successes(configured) == {phone}, configured["results"]
    task = _run(
        relay,
        {"type": "dial", "targets": {"devices": [phone]}, "options": {"dest": "2001"}},
    )
    assert _successes(task) == {phone}, task["results"]

    def in_call() -> bool:
        return _api(relay, "GET", f"/devices/{phone}")["call_status"] == "in_call"

    _wait(in_call, 20, "the device monitor to show the call")
    detail = _api(relay, "GET", f"/devices/{phone}")
    assert detail["online"] is True
    assert detail["uptime"] is not None


def test_capture_screen_stores_a_png(relay: RelayProcess) -> None:
    phones = _rest_phones(relay)[:1]
    relay_api = relay.facts["api"]
    _api(
        relay,
        "POST",
        "/tasks",
        {
            "type": "set_parameters",
            "name": "enable screen capture",
            "targets": {"devices": phones},
            "when": "now",
            "options": {"parameters": {"up.screenCapture.enabled": "1"}},
        },
    )
    time.sleep(1.0)
    task = _run(relay, {"type": "capture_screen", "targets": {"devices": phones}})
    (result,) = task["results"]
    assert result["result"] == "success", result
    request = urllib.request.Request(
        f"{relay_api}/tasks/{task['id']}/screens/{phones[0]}",
        headers={"Authorization": f"Bearer {relay.facts['token']}"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.headers["Content-Type"].startswith("image/png")
        assert response.read().startswith(b"\x89PNG\r\n\x1a\n")


def test_reboot_and_reset_succeed_and_the_phones_come_back(relay: RelayProcess) -> None:
    phones = _rest_phones(relay)[:2]
    task = _run(relay, {"type": "reboot", "targets": {"devices": phones}})
    assert _successes(task) == set(phones), task["results"]
    reset = _run(
        relay, {"type": "reset", "targets": {"devices": phones}, "options": {"scope": "local"}}
    )
    assert reset["success"] + reset["failure"] == len(phones)

    def back_online() -> bool:
        return all(_api(relay, "GET", f"/devices/{m}")["online"] for m in phones)

    _wait(back_online, 40, "the rebooted phones to be online again")


def test_ad_password_result_never_shows_the_password(relay: RelayProcess) -> None:
    phone = _rest_phones(relay)[0]
    task = _run(
        relay,
        {
            "type": "ad_password",
            "targets": {"devices": [phone]},
            "options": {"password": "Sekr3t-AD-pw"},
        },
    )
    assert _successes(task) == {phone}, task["results"]
    reply = http("GET", f"{relay.facts['api']}/tasks/{task['id']}", relay.facts["token"])
    assert "Sekr3t-AD-pw" not in reply.text


def test_the_dashboard_counts_the_phones_online(relay: RelayProcess) -> None:
    dashboard = _api(relay, "GET", "/dashboard")
    assert dashboard["total"] == PHONES
    assert 0 < dashboard["online"] <= PHONES
    assert sum(v["total"] for v in dashboard["by_model"].values()) == PHONES


def test_a_standalone_agent_registers_runs_and_reports_status(
    relay: RelayProcess, tmp_path: Path
) -> None:
    facts = relay.facts
    cloud = facts["api"].removesuffix("/api/v1")
    data = tmp_path / "standalone"
    registered = run_relay(
        tmp_path,
        "agent",
        "register",
        "--cloud",
        cloud,
        "--tenant",
        facts["tenant"],
        "--pin",
        facts["pin"],
        "--data-dir",
        str(data),
        "--json",
    )
    assert registered.returncode == 0, registered.stderr
    credential = data / "agent" / "credential.json"
    assert credential.stat().st_mode & 0o777 == 0o600
    assert facts["pin"] not in registered.stderr

    stderr_path = tmp_path / "agent.log"
    with stderr_path.open("wb") as stderr:
        agent = subprocess.Popen(
            [*relay_command(), "agent", "run", "--data-dir", str(data)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            env=clean_env(tmp_path),
            cwd=tmp_path,
        )
    try:

        def linked() -> dict[str, Any] | None:
            status = run_relay(tmp_path, "agent", "status", "--data-dir", str(data), "--json")
            assert status.returncode == 0, status.stderr
            value: dict[str, Any] = json.loads(status.stdout)
            return value if value["link"] == "up" and value["last_heartbeat"] else None

        status = _wait(linked, 30, "the standalone agent's first heartbeat")
        assert status["queued_reports"] >= 0
        listed = {r["id"]: r for r in _api(relay, "GET", "/relays")}
        assert listed[status["relay_id"]]["status"] == "active"
        # Deleting the relay in the cloud revokes its credential: the agent stops and
        # says what to do, instead of retrying forever.
        reply = http("DELETE", f"{facts['api']}/relays/{status['relay_id']}", facts["token"])
        assert reply.status == 204, reply.text
        assert agent.wait(timeout=30) == 1
    finally:
        if agent.poll() is None:
            agent.terminate()
            agent.wait(timeout=20)
    assert "register it again" in stderr_path.read_text()
    secret = json.loads(credential.read_text())["secret"]
    assert secret not in stderr_path.read_text()
