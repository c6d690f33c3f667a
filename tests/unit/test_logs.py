"""relay.logs: one line per event, human or JSON, with secret-named fields masked."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from relay.logs import HumanFormatter, JsonFormatter, event, setup_logging


def _logger(formatter: logging.Formatter, name: str) -> tuple[logging.Logger, io.StringIO]:
    """A logger of its own (not propagating) writing into a buffer."""
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(formatter)
    logger = logging.getLogger(f"tests.logs.{name}")
    logger.handlers[:] = [handler]
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    return logger, buffer


@pytest.fixture
def json_log(request: pytest.FixtureRequest) -> Iterator[tuple[logging.Logger, io.StringIO]]:
    logger, buffer = _logger(JsonFormatter(), f"json.{request.node.name}")
    yield logger, buffer
    logger.handlers.clear()


@pytest.fixture
def human_log(request: pytest.FixtureRequest) -> Iterator[tuple[logging.Logger, io.StringIO]]:
    logger, buffer = _logger(HumanFormatter(), f"human.{request.node.name}")
    yield logger, buffer
    logger.handlers.clear()


@pytest.fixture
def restore_root_logging() -> Iterator[None]:
    """setup_logging replaces the root handlers; put pytest's back afterwards."""
    root = logging.getLogger()
    access = logging.getLogger("aiohttp.access")
    saved = (root.handlers[:], root.level, access.level)
    yield
    root.handlers[:], root.level = saved[0], saved[1]
    access.setLevel(saved[2])


SECRETS = {
    "password": "hunter2",
    "api_token": "rly_abcdef",
    "client_secret": "s3cr3t",
    "Authorization": "Bearer rly_abcdef",
    "PROV_PASSWORD": "Hunter2!",
}


def test_json_formatter_emits_one_object_per_event(
    json_log: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, buffer = json_log
    event(logger, "request", method="GET", status=200)
    event(logger, "auth_failed", logging.WARNING, source="127.0.0.1")
    lines = buffer.getvalue().splitlines()
    assert len(lines) == 2
    first, second = (json.loads(line) for line in lines)
    assert first["event"] == "request"
    assert second["event"] == "auth_failed"


def test_json_formatter_carries_level_logger_time_and_fields(
    json_log: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, buffer = json_log
    event(logger, "request", logging.WARNING, method="GET", path="/api/v1/sites", status=200)
    record = json.loads(buffer.getvalue())
    assert record["level"] == "warning"
    assert record["logger"] == logger.name
    assert isinstance(record["ts"], float)
    assert (record["method"], record["path"], record["status"]) == ("GET", "/api/v1/sites", 200)


def test_json_formatter_keeps_a_traceback_on_one_line(
    json_log: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, buffer = json_log
    try:
        raise RuntimeError("boom\nsecond line")
    except RuntimeError:
        logger.exception("unhandled error")
    [line] = buffer.getvalue().splitlines()
    record = json.loads(line)
    assert record["event"] == "unhandled error"
    assert "RuntimeError: boom" in record["exc"]


def test_json_formatter_writes_unserialisable_values_as_text(
    json_log: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, buffer = json_log
    event(logger, "started", where=Path("/var/lib/relay"), items={1, 2})
    record = json.loads(buffer.getvalue())
    assert record["where"] == "/var/lib/relay"
    assert isinstance(record["items"], str)


def test_human_formatter_writes_name_then_key_values(
    human_log: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, buffer = human_log
    event(logger, "request", method="GET", status=200)
    [line] = buffer.getvalue().splitlines()
    assert line.endswith(f" INFO {logger.name} request method=GET status=200")


def test_json_formatter_masks_secret_named_fields(
    json_log: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, buffer = json_log
    event(logger, "login", logging.INFO, user="alice", **SECRETS)
    record = json.loads(buffer.getvalue())
    assert record["user"] == "alice"
    for name in SECRETS:
        assert record[name] == "***"
    for value in SECRETS.values():
        assert value not in buffer.getvalue()


def test_human_formatter_masks_secret_named_fields(
    human_log: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, buffer = human_log
    event(logger, "login", logging.INFO, user="alice", **SECRETS)
    line = buffer.getvalue()
    assert "user=alice" in line
    for name in SECRETS:
        assert f"{name}=***" in line
    for value in SECRETS.values():
        assert value not in line


def test_setup_logging_json_sends_json_lines_to_stderr(
    restore_root_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    setup_logging("json", "info")
    event(logging.getLogger("relay.test"), "ready", api="http://127.0.0.1:1/api/v1", token="t0k")
    logging.getLogger("relay.test").debug("below the level")
    captured = capsys.readouterr()
    assert captured.out == ""
    [line] = captured.err.splitlines()
    record = json.loads(line)
    assert (record["event"], record["token"]) == ("ready", "***")


def test_setup_logging_human_is_not_json(
    restore_root_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    setup_logging("human")
    event(logging.getLogger("relay.test"), "ready", api="x")
    [line] = capsys.readouterr().err.splitlines()
    assert " INFO relay.test ready api=x" in line
    assert not line.startswith("{")
