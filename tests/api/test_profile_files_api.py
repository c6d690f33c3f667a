"""Profile parameters bound to resource and device files (cloud.md "Resource and device files")."""

from __future__ import annotations

from tests.api.conftest import Api


async def _upload(api: Api, path: str, data: bytes) -> None:
    reply = await api.call("PUT", path, data=data, content_type="application/octet-stream")
    assert reply.status == 201, reply.text


async def test_a_parameter_bound_to_a_resource_file_takes_its_name(api: Api) -> None:
    await _upload(api, "/resources/ring.wav", b"RIFF....WAVE")
    reply = await api.post("/profiles", {"name": "Ring", "files": {"saf.1": "ring.wav"}})
    assert reply.status == 201, reply.text
    assert reply.body["parameters"] == {"saf.1": "ring.wav"}
    assert reply.body["files"] == [{"parameter": "saf.1", "kind": "resource", "file": "ring.wav"}]


async def test_a_parameter_can_be_bound_to_a_global_device_file(api: Api) -> None:
    await _upload(api, "/device-files/000000000000-directory.xml", b"<directory/>")
    body = {"files": {"dir.local.file": "000000000000-directory.xml"}}
    await api.post("/profiles", {"name": "Dir"})
    reply = await api.patch("/profiles/Dir", body)
    assert reply.body["files"][0]["kind"] == "device"


async def test_binding_an_unknown_file_is_refused(api: Api) -> None:
    reply = await api.post("/profiles", {"name": "X", "files": {"saf.1": "nope.wav"}})
    assert reply.status == 404
    assert reply.body["error"]["field"] == "files.saf.1"


async def test_a_bound_resource_cannot_be_deleted(api: Api) -> None:
    await _upload(api, "/resources/ring.wav", b"RIFF....WAVE")
    await api.post("/profiles", {"name": "Ring", "files": {"saf.1": "ring.wav"}})
    reply = await api.delete("/resources/ring.wav")
    assert reply.status == 409
    assert "Ring:saf.1" in reply.body["error"]["message"]


async def test_editing_the_parameter_away_releases_the_file(api: Api) -> None:
    await _upload(api, "/resources/ring.wav", b"RIFF....WAVE")
    await api.post("/profiles", {"name": "Ring", "files": {"saf.1": "ring.wav"}})
    reply = await api.patch("/profiles/Ring", {"parameters": {"saf.1": "other.wav"}})
    assert reply.body["files"] == []
    assert (await api.delete("/resources/ring.wav")).status == 204
