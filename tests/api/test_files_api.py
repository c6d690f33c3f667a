"""The REST side of files (cloud.md "Resource and device files"): resource files,
device files, the logs phones upload, and the phones' admin password."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.api.conftest import Api, Reply, error_of
from tests.phones.conftest import (
    Relay,
    attributes,
    curl_binary,
    running_relay,
    settle_after_shutdown,
)

MAC = "0004f2a1b2c3"
OCTETS = "application/octet-stream"
CFG = b'<polycomConfig><feature feature.x="1"/></polycomConfig>\n'


@pytest.fixture(autouse=True)
async def _settle() -> AsyncIterator[None]:
    """Downloads go through the loop's default executor; stop it before the leak check."""
    yield
    await settle_after_shutdown()


@pytest.fixture
async def relay(tmp_path: Path) -> AsyncIterator[Relay]:
    """A relay whose phone-facing service is driven with curl (tests/phones/conftest.py)."""
    async with running_relay(tmp_path / "data", tmp_path / "curl", curl_binary()) as running:
        yield running


async def _put(api: Api, path: str, data: bytes, **kw: Any) -> Reply:
    return await api.put(path, data=io.BytesIO(data), content_type=OCTETS, **kw)


async def _readonly(api: Api) -> str:
    reply = await api.post("/tokens", {"name": "viewer", "role": "readonly"})
    assert reply.status == 201, reply.text
    token: str = reply.body["token"]
    return token


# -- resource files ------------------------------------------------------------------


async def test_an_uploaded_resource_is_listed_with_size_and_sha256(api: Api) -> None:
    reply = await _put(api, "/resources/ring.wav", b"RIFF....WAVE")
    assert reply.status == 201, reply.text
    listing = (await api.get("/resources")).body
    assert [(r["name"], r["size"], r["sha256"]) for r in listing] == [
        ("ring.wav", 12, hashlib.sha256(b"RIFF....WAVE").hexdigest())
    ]


async def test_a_resource_downloads_as_uploaded(api: Api) -> None:
    data = bytes(range(256))
    await _put(api, "/resources/logo.png", data)
    async with api.session.get(
        api.base + "/resources/logo.png", headers={"Authorization": f"Bearer {api.token}"}
    ) as resp:
        assert resp.status == 200
        assert await resp.read() == data


async def test_a_second_upload_replaces_the_resource(api: Api) -> None:
    await _put(api, "/resources/notes.txt", b"one")
    await _put(api, "/resources/notes.txt", b"second")
    assert (await api.get("/resources/notes.txt")).text == "second"
    assert [r["size"] for r in (await api.get("/resources")).body] == [6]


async def test_a_deleted_resource_is_gone(api: Api) -> None:
    await _put(api, "/resources/ring.wav", b"RIFF")
    assert (await api.delete("/resources/ring.wav")).status == 204
    assert (await api.get("/resources")).body == []
    assert (await api.get("/resources/ring.wav")).status == 404
    assert (await api.delete("/resources/ring.wav")).status == 404


@pytest.mark.parametrize("name", ["ring.exe", "ring", "ring.sh", "ring.wav.php", "ring.WAVX"])
async def test_a_resource_with_a_bad_extension_is_422(api: Api, name: str) -> None:
    reply = await _put(api, f"/resources/{name}", b"x")
    assert reply.status == 422
    assert error_of(reply)["field"] == "name"
    assert (await api.get("/resources")).body == []


async def test_an_upper_case_extension_is_accepted(api: Api) -> None:
    assert (await _put(api, "/resources/RING.WAV", b"RIFF")).status == 201


async def test_a_resource_named_like_a_device_file_is_422(api: Api) -> None:
    reply = await _put(api, f"/resources/{MAC}-license.cfg", b"x")
    assert reply.status == 422
    assert "device file" in error_of(reply)["message"]


@pytest.mark.parametrize(
    "name", ["%2e%2e%2fevil.wav", "..wav", ".hidden.wav", "a%20b.wav", "%2Fetc%2Fx.txt"]
)
async def test_a_resource_with_an_unsafe_name_is_refused(api: Api, name: str) -> None:
    reply = await _put(api, f"/resources/{name}", b"x")
    assert reply.status in (404, 422)
    assert (await api.get("/resources")).body == []
    assert not (api.data_dir / "cloud" / "files" / "evil.wav").exists()


async def test_an_unknown_resource_is_404(api: Api) -> None:
    assert (await api.get("/resources/nothing.wav")).status == 404


async def test_a_resource_upload_is_in_the_activity_log(api: Api) -> None:
    await _put(api, "/resources/ring.wav", b"RIFF")
    entries = (await api.get("/activity")).body["entries"]
    assert any(e["op"] == "upload" and e["target"] == "resource/ring.wav" for e in entries)


async def test_a_readonly_token_cannot_upload_a_resource(api: Api) -> None:
    token = await _readonly(api)
    reply = await api.put("/resources/ring.wav", data=b"RIFF", content_type=OCTETS, token=token)
    assert reply.status == 403
    assert (await api.get("/resources", token=token)).body == []


# -- device files ----------------------------------------------------------------------


async def test_a_global_device_file_is_for_every_phone(api: Api) -> None:
    reply = await _put(api, "/device-files/000000000000-license.cfg", CFG)
    assert reply.status == 201, reply.text
    listing = (await api.get("/device-files")).body
    assert [(f["name"], f["device_id"], f["directory"]) for f in listing] == [
        ("000000000000-license.cfg", None, "")
    ]


async def test_a_device_file_for_one_phone_names_its_device(api: Api) -> None:
    assert (await api.post("/devices", {"mac": MAC})).status == 201
    assert (await _put(api, f"/device-files/{MAC}-license.cfg", CFG)).status == 201
    listing = (await api.get("/device-files")).body
    assert [(f["name"], f["device_id"]) for f in listing] == [(f"{MAC}-license.cfg", MAC)]


async def test_a_device_file_for_an_unknown_device_is_404(api: Api) -> None:
    reply = await _put(api, f"/device-files/{MAC}-license.cfg", CFG)
    assert reply.status == 404
    assert (await api.get("/device-files")).body == []


async def test_a_device_file_with_an_upper_case_mac_is_stored_lower_case(api: Api) -> None:
    await api.post("/devices", {"mac": MAC})
    reply = await _put(api, f"/device-files/{MAC.upper()}-license.cfg", CFG)
    assert reply.status == 201, reply.text
    assert reply.body["name"] == f"{MAC}-license.cfg"
    assert (await api.get(f"/device-files/{MAC}-license.cfg")).status == 200


@pytest.mark.parametrize(
    "name",
    [
        f"{MAC}-phone.cfg",
        f"{MAC}-web.cfg",
        f"{MAC}-profile.cfg",
        f"{MAC}-boot.log",
        f"{MAC}-system.cfg",
        "000000000000-profile.cfg",
        "000000000000-calls.xml",
    ],
)
async def test_a_device_file_with_a_reserved_name_is_422(api: Api, name: str) -> None:
    await api.post("/devices", {"mac": MAC})
    reply = await _put(api, f"/device-files/{name}", CFG)
    assert reply.status == 422
    assert error_of(reply)["code"] == "reserved_name"


async def test_a_global_contact_directory_can_be_uploaded(api: Api) -> None:
    """phones.md section 2: every phone fetches 000000000000-directory.xml."""
    reply = await _put(api, "/device-files/000000000000-directory.xml", b"<directory/>")
    assert reply.status == 201, reply.text


@pytest.mark.parametrize("name", ["000000000000-tool.exe", "000000000000-ring.wav"])
async def test_a_device_file_of_a_bad_type_is_422(api: Api, name: str) -> None:
    reply = await _put(api, f"/device-files/{name}", b"x")
    assert reply.status == 422
    assert error_of(reply)["code"] == "invalid_file_type"


@pytest.mark.parametrize("name", ["license.cfg", "00000000000-x.cfg", "000000000000-", "0-x.cfg"])
async def test_a_device_file_not_named_for_a_mac_is_422(api: Api, name: str) -> None:
    reply = await _put(api, f"/device-files/{name}", CFG)
    assert reply.status == 422
    assert error_of(reply)["code"] == "invalid_file_name"


async def test_a_device_file_in_an_unknown_directory_is_422(api: Api) -> None:
    reply = await _put(api, "/device-files/000000000000-x.cfg", CFG, params={"directory": "../etc"})
    assert reply.status == 422
    assert error_of(reply)["field"] == "directory"


async def test_a_device_file_keeps_its_directory(api: Api) -> None:
    reply = await _put(
        api,
        "/device-files/000000000000-ca.pem",
        b"-----BEGIN",
        params={"directory": "certificates"},
    )
    assert reply.status == 201, reply.text
    assert [f["directory"] for f in (await api.get("/device-files")).body] == ["certificates"]


async def test_a_device_file_downloads_as_uploaded(api: Api) -> None:
    await _put(api, "/device-files/000000000000-license.cfg", CFG)
    reply = await api.get("/device-files/000000000000-license.cfg")
    assert reply.status == 200
    assert reply.text.encode() == CFG


async def test_a_deleted_device_file_is_gone(api: Api) -> None:
    await _put(api, "/device-files/000000000000-license.cfg", CFG)
    assert (await api.delete("/device-files/000000000000-license.cfg")).status == 204
    assert (await api.get("/device-files")).body == []
    assert (await api.get("/device-files/000000000000-license.cfg")).status == 404
    assert (await api.delete("/device-files/000000000000-license.cfg")).status == 404


async def test_a_device_file_over_10_mb_is_413(api: Api) -> None:
    reply = await _put(api, "/device-files/000000000000-big.csv", b"a," * (5 * 1024 * 1024 + 1))
    assert reply.status == 413
    assert (await api.get("/device-files")).body == []


# -- logs ------------------------------------------------------------------------------


async def test_the_logs_of_an_unknown_device_are_404(api: Api) -> None:
    assert (await api.get(f"/devices/{MAC}/logs")).status == 404


async def test_a_device_without_uploads_has_no_logs(api: Api) -> None:
    await api.post("/devices", {"mac": MAC})
    reply = await api.get(f"/devices/{MAC}/logs")
    assert reply.status == 200
    assert reply.body == {"keep_days": 10, "days": [], "uploads": []}


@pytest.mark.parametrize("date", ["yesterday", "2026-13-01", "2026-1-1x"])
async def test_a_log_date_that_is_not_a_date_is_400(api: Api, date: str) -> None:
    await api.post("/devices", {"mac": MAC})
    reply = await api.get(f"/devices/{MAC}/logs/{date}/{MAC}-app.log")
    assert reply.status == 400
    assert error_of(reply)["code"] == "invalid_date"


async def test_a_missing_log_is_404(api: Api) -> None:
    await api.post("/devices", {"mac": MAC})
    assert (await api.get(f"/devices/{MAC}/logs/2026-01-01/{MAC}-app.log")).status == 404
    assert (await api.delete(f"/devices/{MAC}/logs/2026-01-01/{MAC}-app.log")).status == 404


async def _today_log(relay: Relay) -> str:
    """A phone uploads a log, so today's log directory exists; returns today's date."""
    reply = await relay.curl("PUT", f"/{MAC}-app.log", upload=b"line\n")
    assert reply.status == 204
    day: str = (await relay.api.get(f"/devices/{MAC}/logs")).body["days"][0]["date"]
    assert day == dt.datetime.now(dt.UTC).date().isoformat()
    return day


async def test_a_log_name_cannot_read_a_file_outside_the_logs(relay: Relay) -> None:
    """logs/<mac>/<day>/ is three levels below files/, four below cloud/cloud.db."""
    day = await _today_log(relay)
    api = relay.api
    assert (api.data_dir / "cloud" / "cloud.db").is_file()
    for name in ("..%2F..%2F..%2F..%2Fcloud.db", "%2e%2e%2f%2e%2e%2f%2e%2e%2f%2e%2e%2fcloud.db"):
        reply = await api.get(f"/devices/{MAC}/logs/{day}/{name}")
        assert reply.status in (400, 404), (name, reply.status)
        assert not reply.text.startswith("SQLite format")


async def test_a_log_name_cannot_delete_a_file_outside_the_logs(relay: Relay) -> None:
    day = await _today_log(relay)
    api = relay.api
    target = api.data_dir / "admin-token"
    assert target.is_file()
    reply = await api.delete(f"/devices/{MAC}/logs/{day}/" + "..%2F" * 5 + "admin-token")
    assert reply.status in (400, 404)
    assert target.is_file()


# -- the phones' admin password ------------------------------------------------------------


async def test_the_device_admin_password_is_for_user_polycom(api: Api) -> None:
    body = (await api.get("/device-admin-password")).body
    assert body["user"] == "Polycom"
    assert len(body["password"]) >= 12
    assert body["password"] != "456"  # the factory default


async def test_rotating_gives_a_new_password_that_is_read_back(api: Api) -> None:
    before = (await api.get("/device-admin-password")).body["password"]
    reply = await api.post("/device-admin-password/rotate")
    assert reply.status == 200
    assert reply.body["user"] == "Polycom"
    assert reply.body["password"] != before
    assert (await api.get("/device-admin-password")).body["password"] == reply.body["password"]


async def test_a_rotation_is_in_the_activity_log_without_the_password(api: Api) -> None:
    password = (await api.post("/device-admin-password/rotate")).body["password"]
    reply = await api.get("/activity")
    assert any(e["op"] == "rotate" for e in reply.body["entries"])
    assert password not in reply.text


async def test_a_readonly_token_cannot_rotate(api: Api) -> None:
    token = await _readonly(api)
    before = (await api.get("/device-admin-password")).body["password"]
    assert (await api.post("/device-admin-password/rotate", token=token)).status == 403
    assert (await api.get("/device-admin-password")).body["password"] == before


async def test_a_rotation_reaches_the_next_profile_cfg(relay: Relay) -> None:
    assert (await relay.curl("GET", f"/{MAC}.cfg")).status == 200
    first = attributes((await relay.curl("GET", f"/{MAC}-profile.cfg")).body)
    old = (await relay.api.get("/device-admin-password")).body["password"]
    assert first["device.auth.localAdminPassword"] == old
    new = (await relay.api.post("/device-admin-password/rotate")).body["password"]
    second = attributes((await relay.curl("GET", f"/{MAC}-profile.cfg")).body)
    assert second["device.auth.localAdminPassword"] == new
    assert second["device.auth.localAdminPassword.set"] == "1"
