"""The `relay up` contract (issue 2) as scripts outside the test suite rely on it."""

from __future__ import annotations

import json
import re
import signal
import socket
import stat
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.e2e.conftest import (
    RelayCli,
    RelayProcess,
    http,
    port_is_closed,
    run_relay,
)
from tests.ports import free_port

RelayUp = Callable[..., RelayProcess]


def test_ready_line_names_api_token_and_tenant(relay_up: RelayUp) -> None:
    relay = relay_up()
    facts = relay.facts
    assert facts["event"] == "ready"
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/api/v1", facts["api"])
    assert isinstance(facts["token"], str) and facts["token"]
    assert isinstance(facts["tenant"], str) and facts["tenant"]


def test_ready_line_is_the_only_stdout_line(relay_up: RelayUp) -> None:
    relay = relay_up()
    assert relay.stop() == 0
    relay.read_stdout_until(lambda _: False, timeout=5)  # to EOF
    assert relay.out.count(b"\n") == 1
    assert json.loads(relay.out)["event"] == "ready"


def test_api_answers_with_the_ready_token(relay_up: RelayUp) -> None:
    facts = relay_up().facts
    reply = http("GET", f"{facts['api']}/tenant", facts["token"])
    assert reply.status == 200
    assert reply.body["id"] == facts["tenant"]


def test_api_refuses_a_request_without_token(relay_up: RelayUp) -> None:
    facts = relay_up().facts
    reply = http("GET", f"{facts['api']}/sites")
    assert reply.status == 401
    assert reply.body["error"]["code"] == "unauthorized"


def test_sigterm_exits_0_and_frees_the_port(relay_up: RelayUp) -> None:
    relay = relay_up()
    assert relay.stop(signal.SIGTERM) == 0
    assert port_is_closed(relay.facts["api"])


def test_sigint_exits_0_and_frees_the_port(relay_up: RelayUp) -> None:
    relay = relay_up()
    assert relay.stop(signal.SIGINT) == 0
    assert port_is_closed(relay.facts["api"])


def test_shutdown_is_logged_as_stopped(relay_up: RelayUp) -> None:
    relay = relay_up("--log-format", "json")
    assert relay.stop() == 0
    events = [json.loads(line)["event"] for line in relay.stderr().splitlines()]
    # A request in flight when the stop came (the relay's first ZTP sync, a heartbeat)
    # is logged when it completes, which may be after "stopping".
    lifecycle = [e for e in events if e != "request"]
    assert lifecycle[-2:] == ["stopping", "stopped"]


def test_restart_keeps_tenant_and_token(relay_up: RelayUp, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    first = relay_up(data_dir=data_dir)
    assert first.stop() == 0
    second = relay_up(data_dir=data_dir)
    assert second.facts["tenant"] == first.facts["tenant"]
    assert second.facts["token"] == first.facts["token"]
    assert http("GET", f"{second.facts['api']}/sites", first.facts["token"]).status == 200


def test_admin_token_file_holds_the_token_with_mode_0600(relay_up: RelayUp) -> None:
    relay = relay_up()
    token_file = relay.data_dir / "admin-token"
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert token_file.read_text().strip() == relay.facts["token"]
    assert relay.facts["token_file"] == str(token_file)


def test_token_is_stored_in_no_other_file_of_the_data_dir(relay_up: RelayUp) -> None:
    relay = relay_up()
    http("POST", f"{relay.facts['api']}/device-groups", relay.facts["token"], {"name": "lab"})
    assert relay.stop() == 0
    token = relay.facts["token"].encode()
    holders = [
        p.relative_to(relay.data_dir)
        for p in relay.data_dir.rglob("*")
        if p.is_file() and token in p.read_bytes()
    ]
    assert holders == [Path("admin-token")]


def _exercise_api(api: str, token: str) -> str:
    """A few calls: a good read, a write, a 404, failed auths; returns a created token."""
    assert http("GET", f"{api}/sites", token).status == 200
    assert http("POST", f"{api}/device-groups", token, {"name": "lab"}).status == 201
    assert http("GET", f"{api}/sites/nowhere", token).status == 404
    assert http("GET", f"{api}/sites", token + "x").status == 401
    assert http("GET", f"{api}/sites", "rly_wrong").status == 401
    created = http("POST", f"{api}/tokens", token, {"name": "ci", "role": "readonly"})
    assert created.status == 201
    secret = created.body["token"]
    assert isinstance(secret, str)
    assert http("POST", f"{api}/device-groups", secret, {"name": "nope"}).status == 403
    return secret


@pytest.mark.parametrize("log_format", ["json", "human"])
def test_token_never_appears_on_stderr(relay_up: RelayUp, log_format: str) -> None:
    relay = relay_up("--log-format", log_format)
    created = _exercise_api(relay.facts["api"], relay.facts["token"])
    assert relay.stop() == 0
    log = relay.stderr()
    assert "auth_failed" in log  # the failed auth was logged, without the token
    assert relay.facts["token"] not in log
    assert created not in log


def test_json_log_format_makes_every_stderr_line_a_json_object(relay_up: RelayUp) -> None:
    relay = relay_up("--log-format", "json")
    _exercise_api(relay.facts["api"], relay.facts["token"])
    assert relay.stop() == 0
    lines = relay.stderr().splitlines()
    assert len(lines) >= 8  # startup, requests, shutdown
    for line in lines:
        record = json.loads(line)
        assert isinstance(record, dict)
        assert {"ts", "level", "logger", "event"} <= record.keys()


def test_human_log_format_is_the_default(relay_up: RelayUp) -> None:
    relay = relay_up()
    assert relay.stop() == 0
    lines = relay.stderr().splitlines()
    assert lines
    assert all(not line.startswith("{") for line in lines)
    assert any(" INFO relay.app ready " in line for line in lines)


def test_human_banner_shows_api_url_and_token_file_but_not_the_token(
    relay_cli: RelayCli, tmp_path: Path
) -> None:
    port = free_port()
    relay = relay_cli("up", "--api-port", str(port))
    banner = relay.read_stdout_until(lambda b: b"Ctrl-C" in b, timeout=20).decode()
    token_file = tmp_path / "data" / "admin-token"
    token = token_file.read_text().strip()
    assert f"http://127.0.0.1:{port}/api/v1" in banner
    assert str(token_file) in banner
    assert token not in banner
    assert relay.stop() == 0
    assert token not in relay.stderr()


def test_port_in_use_exits_2_naming_the_port_and_free_ports(tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = run_relay(tmp_path, "up", "--data-dir", str(tmp_path / "d"), "--api-port", str(port))
    assert done.returncode == 2
    assert str(port) in done.stderr
    assert "--free-ports" in done.stderr
    assert "Traceback" not in done.stderr
    assert done.stdout == ""


def test_cli_readonly_token_is_accepted_for_get_and_refused_for_post(
    relay_up: RelayUp, tmp_path: Path
) -> None:
    relay = relay_up()
    done = run_relay(
        tmp_path,
        "token",
        "create",
        "--data-dir",
        str(relay.data_dir),
        "--name",
        "ci",
        "--role",
        "readonly",
        "--json",
    )
    assert done.returncode == 0, done.stderr
    row = json.loads(done.stdout)
    assert row["role"] == "readonly"
    api = relay.facts["api"]
    assert http("GET", f"{api}/sites", row["token"]).status == 200
    refused = http("POST", f"{api}/device-groups", row["token"], {"name": "lab"})
    assert refused.status == 403
    assert refused.body["error"]["code"] == "read_only"


def test_cli_token_create_never_logs_the_token(tmp_path: Path) -> None:
    done = run_relay(
        tmp_path, "token", "create", "--data-dir", str(tmp_path / "d"), "--name", "ci", "--json"
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["token"] not in done.stderr


def test_without_data_dir_the_state_lives_in_home_dot_relay(tmp_path: Path) -> None:
    done = run_relay(tmp_path, "token", "create", "--name", "ci")
    assert done.returncode == 0, done.stderr
    assert (tmp_path / ".relay" / "cloud").is_dir()
