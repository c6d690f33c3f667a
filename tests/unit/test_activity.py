"""relay.cloud.activity: one JSON-lines file per ISO week, kept four weeks."""

from __future__ import annotations

import datetime as dt
import json
import stat
from pathlib import Path

import pytest

from relay.cloud.activity import ActivityLog, week_name

# Wednesday of ISO week 2026-W47 (Monday 16 to Sunday 22 November 2026).
WEDNESDAY = dt.date(2026, 11, 18)


def _at(day: dt.date, hour: int = 12, minute: int = 0) -> float:
    return dt.datetime(day.year, day.month, day.day, hour, minute, tzinfo=dt.UTC).timestamp()


@pytest.fixture
def log(tmp_path: Path) -> ActivityLog:
    return ActivityLog(tmp_path / "activity")


def test_entry_goes_to_the_file_of_its_iso_week(log: ActivityLog) -> None:
    log.record(_at(WEDNESDAY), "admin(t1)", "create", "site:HQ", cidr="20.1.0.0/16")
    path = log.directory / "2026-W47.jsonl"
    assert log.weeks() == ["2026-W47"]
    [line] = path.read_text().splitlines()
    assert json.loads(line) == {
        "ts": "2026-11-18T12:00:00+00:00",
        "actor": "admin(t1)",
        "op": "create",
        "target": "site:HQ",
        "detail": {"cidr": "20.1.0.0/16"},
    }


def test_entry_without_detail_has_no_detail_key(log: ActivityLog) -> None:
    log.record(_at(WEDNESDAY), "admin", "delete", "group:lab")
    [entry] = log.week(WEDNESDAY)
    assert "detail" not in entry


def test_week_name_uses_the_iso_year_at_new_year() -> None:
    assert week_name(dt.date(2021, 1, 1)) == "2020-W53"
    assert week_name(dt.date(2024, 12, 30)) == "2025-W01"


def test_entry_of_new_years_day_goes_to_the_iso_week_of_the_old_year(log: ActivityLog) -> None:
    log.record(_at(dt.date(2021, 1, 1)), "admin", "op", "x")
    assert log.weeks() == ["2020-W53"]


def test_week_is_chosen_by_utc_date(log: ActivityLog) -> None:
    sunday_late = _at(dt.date(2026, 11, 22), hour=23, minute=59)
    log.record(sunday_late, "admin", "op", "x")
    assert log.weeks() == ["2026-W47"]


def test_week_returns_every_entry_of_the_week_holding_the_date(log: ActivityLog) -> None:
    monday, sunday = dt.date(2026, 11, 16), dt.date(2026, 11, 22)
    log.record(_at(monday - dt.timedelta(days=1)), "admin", "before", "x")
    log.record(_at(monday, hour=0), "admin", "first", "x")
    log.record(_at(WEDNESDAY), "admin", "middle", "x")
    log.record(_at(sunday, hour=23), "admin", "last", "x")
    log.record(_at(sunday + dt.timedelta(days=1)), "admin", "after", "x")
    for day in (monday, WEDNESDAY, sunday):
        assert [e["op"] for e in log.week(day)] == ["first", "middle", "last"]


def test_week_without_entries_is_empty(log: ActivityLog) -> None:
    log.record(_at(WEDNESDAY), "admin", "op", "x")
    assert log.week(WEDNESDAY - dt.timedelta(weeks=1)) == []


def test_current_week_and_three_before_it_are_kept(log: ActivityLog) -> None:
    for weeks_ago in (3, 2, 1, 0):
        log.record(_at(WEDNESDAY - dt.timedelta(weeks=weeks_ago)), "admin", "op", "x")
    assert log.weeks() == ["2026-W44", "2026-W45", "2026-W46", "2026-W47"]


def test_files_older_than_four_weeks_are_pruned(log: ActivityLog) -> None:
    for weeks_ago in (5, 4, 3, 2, 1, 0):
        log.record(_at(WEDNESDAY - dt.timedelta(weeks=weeks_ago)), "admin", "op", "x")
    assert log.weeks() == ["2026-W44", "2026-W45", "2026-W46", "2026-W47"]
    assert log.week(WEDNESDAY - dt.timedelta(weeks=4)) == []


def test_prune_keeps_four_weeks_counted_from_the_given_day(log: ActivityLog) -> None:
    for weeks_ago in (2, 1, 0):
        log.record(_at(WEDNESDAY - dt.timedelta(weeks=weeks_ago)), "admin", "op", "x")
    log.prune(WEDNESDAY + dt.timedelta(weeks=2))
    assert log.weeks() == ["2026-W46", "2026-W47"]


def test_incomplete_last_line_is_skipped(log: ActivityLog) -> None:
    log.record(_at(WEDNESDAY), "admin", "complete", "x")
    path = log.directory / "2026-W47.jsonl"
    with path.open("ab") as fh:  # a crash in the middle of the next append
        fh.write(b'{"ts":"2026-11-18T12:01:00+00:00","actor":"adm')
    assert [e["op"] for e in log.week(WEDNESDAY)] == ["complete"]


def test_incomplete_multibyte_character_is_skipped(log: ActivityLog) -> None:
    log.record(_at(WEDNESDAY), "admin", "complete", "x")
    path = log.directory / "2026-W47.jsonl"
    with path.open("ab") as fh:
        fh.write('{"ts":"2026-11-18T12:01:00+00:00","target":"Zürich'.encode()[:-1])
    assert [e["op"] for e in log.week(WEDNESDAY)] == ["complete"]


def test_entry_recorded_after_a_crash_is_not_lost(log: ActivityLog) -> None:
    log.record(_at(WEDNESDAY), "admin", "before-crash", "x")
    path = log.directory / "2026-W47.jsonl"
    with path.open("ab") as fh:  # the process died mid-append
        fh.write(b'{"ts":"2026-11-18T12:01:00+00:00","actor":"adm')
    log.record(_at(WEDNESDAY, minute=5), "admin", "after-restart", "x")
    assert [e["op"] for e in log.week(WEDNESDAY)] == ["before-crash", "after-restart"]


def test_files_are_created_0600(log: ActivityLog) -> None:
    log.record(_at(WEDNESDAY), "admin", "op", "x")
    log.record(_at(WEDNESDAY + dt.timedelta(weeks=1)), "admin", "op", "x")
    for path in log.directory.glob("*.jsonl"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_entries_survive_a_new_activity_log_on_the_same_directory(tmp_path: Path) -> None:
    ActivityLog(tmp_path / "activity").record(_at(WEDNESDAY), "admin", "op", "x")
    assert len(ActivityLog(tmp_path / "activity").week(WEDNESDAY)) == 1
