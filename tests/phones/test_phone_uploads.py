"""What phones PUT: their logs (appended per day, kept 10 days, read back through the
REST API) and their override files; nothing else (phones.md section 2; cloud.md
"Resource and device files")."""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path

import pytest

from tests.phones.conftest import MAC, UA_UPDATER, Relay, activity

BOOT_1 = b"0101000000|boot |1|00||Updater starting\n"
BOOT_2 = b"0101000003|boot |1|00||Updater done\n"
TEN_MB = 10 * 1024 * 1024
TWO_MB = 2 * 1024 * 1024


def _sized_file(path: Path, size: int) -> Path:
    """A file of `size` bytes without holding them in memory: a repeated log line."""
    line = b"0101000000|app  |1|00||a line of a phone log\n"
    with path.open("wb") as fh:
        whole, rest = divmod(size, len(line))
        for _ in range(whole):
            fh.write(line)
        fh.write(line[:rest])
    return path


async def _put(relay: Relay, name: str, data: bytes | Path, **kw: object) -> int:
    reply = await relay.curl("PUT", f"/{name}", upload=data, **kw)  # type: ignore[arg-type]
    return reply.status


async def _logs(relay: Relay) -> dict[str, object]:
    reply = await relay.api.get(f"/devices/{MAC}/logs")
    assert reply.status == 200, reply.text
    body: dict[str, object] = reply.body
    return body


async def _day_files(relay: Relay) -> tuple[str, dict[str, int]]:
    """(date, {name: size}) of the one day that holds logs."""
    days = (await _logs(relay))["days"]
    assert isinstance(days, list)
    assert len(days) == 1, days
    return days[0]["date"], {f["name"]: f["size"] for f in days[0]["files"]}


# -- logs ------------------------------------------------------------------------


async def test_a_boot_log_put_is_accepted_with_204(relay: Relay) -> None:
    assert await _put(relay, f"{MAC}-boot.log", BOOT_1, user_agent=UA_UPDATER) == 204


async def test_two_log_puts_are_appended_into_the_day_file(relay: Relay) -> None:
    assert await _put(relay, f"{MAC}-boot.log", BOOT_1, user_agent=UA_UPDATER) == 204
    assert await _put(relay, f"{MAC}-boot.log", BOOT_2, user_agent=UA_UPDATER) == 204
    day, files = await _day_files(relay)
    assert files == {f"{MAC}-boot.log": len(BOOT_1) + len(BOOT_2)}
    reply = await relay.api.get(f"/devices/{MAC}/logs/{day}/{MAC}-boot.log")
    assert reply.status == 200
    assert reply.text.encode() == BOOT_1 + BOOT_2


async def test_head_of_the_app_log_answers_its_current_size(relay: Relay) -> None:
    assert await _put(relay, f"{MAC}-app.log", BOOT_1) == 204
    assert await _put(relay, f"{MAC}-app.log", BOOT_2) == 204
    reply = await relay.curl("HEAD", f"/{MAC}-app.log")
    assert reply.status == 200
    assert int(reply.headers["content-length"]) == len(BOOT_1) + len(BOOT_2)


async def test_head_of_a_log_not_written_today_is_404(relay: Relay) -> None:
    assert (await relay.curl("HEAD", f"/{MAC}-app.log")).status == 404


async def test_phones_cannot_read_a_log_back(relay: Relay) -> None:
    assert await _put(relay, f"{MAC}-app.log", BOOT_1) == 204
    reply = await relay.curl("GET", f"/{MAC}-app.log")
    assert reply.status == 404
    assert reply.body == b""


async def test_logs_are_listed_by_date_with_their_size(relay: Relay) -> None:
    assert await _put(relay, f"{MAC}-boot.log", BOOT_1) == 204
    assert await _put(relay, f"{MAC}-app.log", BOOT_2) == 204
    logs = await _logs(relay)
    assert logs["keep_days"] == 10
    day, files = await _day_files(relay)
    assert len(day) == 10
    assert files == {f"{MAC}-boot.log": len(BOOT_1), f"{MAC}-app.log": len(BOOT_2)}


async def test_a_log_can_be_deleted(relay: Relay) -> None:
    assert await _put(relay, f"{MAC}-app.log", BOOT_1) == 204
    day, _ = await _day_files(relay)
    assert (await relay.api.delete(f"/devices/{MAC}/logs/{day}/{MAC}-app.log")).status == 204
    assert (await relay.api.get(f"/devices/{MAC}/logs/{day}/{MAC}-app.log")).status == 404
    assert (await relay.curl("HEAD", f"/{MAC}-app.log")).status == 404


async def test_a_large_log_put_is_stored_whole(relay: Relay, tmp_path: Path) -> None:
    size = 3 * 1024 * 1024
    log = _sized_file(tmp_path / "app.log", size)
    assert await _put(relay, f"{MAC}-app.log", log) == 204
    reply = await relay.curl("HEAD", f"/{MAC}-app.log")
    assert int(reply.headers["content-length"]) == size


async def test_a_log_put_over_10_mb_gets_413(relay: Relay, tmp_path: Path) -> None:
    log = _sized_file(tmp_path / "app.log", TEN_MB + 1)
    reply = await relay.curl("PUT", f"/{MAC}-app.log", upload=log, check=False)
    assert reply.status == 413
    assert (await relay.curl("HEAD", f"/{MAC}-app.log")).status == 404


async def test_a_chunked_log_put_over_10_mb_gets_413(relay: Relay, tmp_path: Path) -> None:
    """No Content-Length to refuse up front: the limit must hold while reading."""
    log = _sized_file(tmp_path / "app.log", TEN_MB + 1)
    reply = await relay.curl(
        "PUT",
        f"/{MAC}-app.log",
        upload=log,
        headers=["Transfer-Encoding: chunked"],
        check=False,
    )
    assert reply.status == 413
    assert (await relay.curl("HEAD", f"/{MAC}-app.log")).status == 404


# -- override files ------------------------------------------------------------------

OVERRIDES = ("-phone.cfg", "-web.cfg", "-system.cfg", "-calls.xml", "-directory.xml")


@pytest.mark.parametrize("suffix", OVERRIDES)
async def test_an_override_file_is_stored_and_returned(relay: Relay, suffix: str) -> None:
    data = f'<polycomConfig><x x.y="{suffix}"/></polycomConfig>\n'.encode()
    assert await _put(relay, f"{MAC}{suffix}", data) == 204
    reply = await relay.curl("GET", f"/{MAC}{suffix}")
    assert reply.status == 200
    assert reply.body == data


async def test_a_second_override_put_replaces_the_first(relay: Relay) -> None:
    assert await _put(relay, f"{MAC}-phone.cfg", b"<polycomConfig/>\n") == 204
    assert (
        await _put(relay, f"{MAC}-phone.cfg", b"<polycomConfig><a a.b='1'/></polycomConfig>") == 204
    )
    reply = await relay.curl("GET", f"/{MAC}-phone.cfg")
    assert reply.body == b"<polycomConfig><a a.b='1'/></polycomConfig>"


async def test_override_files_are_listed_on_the_device_log_page(relay: Relay) -> None:
    assert await _put(relay, f"{MAC}-web.cfg", b"<polycomConfig/>\n") == 204
    assert (await _logs(relay))["uploads"] == [f"{MAC}-web.cfg"]


async def test_an_override_over_2_mb_gets_413(relay: Relay, tmp_path: Path) -> None:
    big = _sized_file(tmp_path / "phone.cfg", TWO_MB + 1)
    reply = await relay.curl("PUT", f"/{MAC}-phone.cfg", upload=big, check=False)
    assert reply.status == 413
    assert (await relay.curl("GET", f"/{MAC}-phone.cfg")).status == 404


async def test_a_chunked_override_over_2_mb_gets_413(relay: Relay, tmp_path: Path) -> None:
    """No Content-Length to refuse up front: the limit must hold while reading."""
    big = _sized_file(tmp_path / "phone.cfg", TWO_MB + 1)
    reply = await relay.curl(
        "PUT",
        f"/{MAC}-phone.cfg",
        upload=big,
        headers=["Transfer-Encoding: chunked"],
        check=False,
    )
    assert reply.status == 413
    assert (await relay.curl("GET", f"/{MAC}-phone.cfg")).status == 404


async def test_an_override_of_exactly_2_mb_is_stored_whole(relay: Relay, tmp_path: Path) -> None:
    big = _sized_file(tmp_path / "phone.cfg", TWO_MB)
    assert await _put(relay, f"{MAC}-phone.cfg", big) == 204
    reply = await relay.curl("GET", f"/{MAC}-phone.cfg")
    assert reply.status == 200
    assert len(reply.body) == TWO_MB


# -- everything else is read-only ------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "000000000000.cfg",
        f"{MAC}.cfg",
        f"{MAC}-profile.cfg",
        "ring.wav",
        "000000000000-license.cfg",
        "000000000000-directory.xml",
        f"{MAC}-license.cfg",
    ],
)
async def test_writing_anything_else_gets_403_and_is_audited(relay: Relay, name: str) -> None:
    assert await _put(relay, name, b"<polycomConfig/>\n") == 403
    entries = await activity(relay, "write_refused")
    assert len(entries) == 1
    assert entries[0]["target"] == f"/{name}"
    assert entries[0]["detail"]["source"] == "127.0.0.1"


async def test_a_refused_write_changes_nothing_served(relay: Relay) -> None:
    before = (await relay.curl("GET", f"/{MAC}-profile.cfg")).body
    assert await _put(relay, f"{MAC}-profile.cfg", b"<polycomConfig/>\n") == 403
    assert (await relay.curl("GET", f"/{MAC}-profile.cfg")).body == before


async def test_an_upload_by_an_unknown_phone_with_auto_add_off_gets_404(relay: Relay) -> None:
    assert (await relay.api.patch("/tenant", {"auto_add": False})).status == 200
    assert await _put(relay, f"{MAC}-boot.log", BOOT_1) == 404
    assert (await relay.api.get(f"/devices/{MAC}")).status == 404


async def test_an_upload_cut_off_midway_stores_nothing_and_is_logged_once(
    relay: Relay, caplog: pytest.LogCaptureFixture
) -> None:
    """A phone rebooting mid-upload (seen 77 times in a 10,000-phone reboot) is a log
    line, not a traceback; nothing half-written is kept."""
    assert await _put(relay, f"{MAC}-boot.log", BOOT_1, user_agent=UA_UPDATER) == 204
    host, port = relay.http.removeprefix("http://").rstrip("/").split(":")
    user, password = relay.account
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(
        f"PUT /{MAC}-boot.log HTTP/1.1\r\nHost: {host}\r\nUser-Agent: {UA_UPDATER}\r\n"
        f"Authorization: Basic {token}\r\nContent-Length: 100000\r\n\r\n".encode()
        + BOOT_2
    )
    await writer.drain()
    await asyncio.sleep(0.3)
    writer.transport.abort()
    await asyncio.sleep(0.3)
    assert [r for r in caplog.records if r.levelname == "ERROR"] == []
    _day, files = await _day_files(relay)
    assert files == {f"{MAC}-boot.log": len(BOOT_1)}
    del reader
