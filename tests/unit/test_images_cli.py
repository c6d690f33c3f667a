"""`relay images`: what a person and a script see of the relay's image cache (issue 6)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from download_agent.cli import FAILED, SYNCED, WAITING, bar, outcome, render
from tests.e2e.conftest import relay_command

SYNCING = {
    "id": "a1b2c3d4e5f60718",
    "model": "VVX",
    "version": "6.4.3",
    "filename": "sip.ld",
    "size": 200_000_000,
    "status": "syncing",
    "progress": 0.5,
    "bytes_done": 100_000_000,
    "rate_bps": 12_500_000,
    "reason": "",
}


def _status(*images: dict[str, Any]) -> dict[str, Any]:
    return {"images": list(images), "free_bytes": 9 * 10**9, "reserve_bytes": 10**9}


def test_a_syncing_image_shows_a_progress_bar_with_bytes_and_rate() -> None:
    [line, _disk] = render(_status(SYNCING))
    assert "[############------------]  50%" in line
    assert "100.0 MB" in line
    assert "12.5 MB/s" in line


def test_a_failed_image_shows_why() -> None:
    failed = {**SYNCING, "status": "failed", "reason": "sha256 mismatch; retrying in 30 s"}
    [line, _disk] = render(_status(failed))
    assert "failed" in line
    assert "sha256 mismatch; retrying in 30 s" in line
    assert "[" not in line


def test_the_disk_room_is_shown() -> None:
    assert render(_status(SYNCING))[-1] == "disk: 9.0 GB free, 1.0 GB kept in reserve"


def test_an_empty_set_says_how_to_fill_it() -> None:
    assert "PUT /api/v1/relay-images" in render(_status())[0]


def test_the_bar_is_clamped() -> None:
    assert bar(1.7, 4) == "[####] 100%"
    assert bar(-1, 4) == "[----]   0%"


def test_the_exit_status_tells_a_script_where_the_sync_is() -> None:
    synced = {**SYNCING, "status": "synced"}
    assert outcome(_status(synced)) == SYNCED
    assert outcome(_status(synced, SYNCING)) == WAITING
    assert outcome(_status(synced, {**SYNCING, "status": "failed"})) == FAILED
    assert outcome(None) == WAITING


def test_the_command_prints_json_for_scripts(tmp_path: Path) -> None:
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "status.json").write_text(json.dumps(_status(SYNCING)))
    ran = subprocess.run(
        [*relay_command(), "images", "--data-dir", str(tmp_path), "--json"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert ran.returncode == WAITING, ran.stderr
    assert json.loads(ran.stdout)["images"][0]["id"] == SYNCING["id"]


def test_the_command_says_when_the_agent_has_not_run(tmp_path: Path) -> None:
    ran = subprocess.run(
        [*relay_command(), "images", "--data-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert ran.returncode == WAITING
    assert "download agent" in ran.stdout
