"""Firmware: an uploaded image, selected by a profile, is named in the master file and
served to phones under their part-number prefix (phones.md section 3; cloud.md
"Software"), with Range, ETag and HEAD."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import pytest

from relay.proto.polycom.master import app_file_path_for, parse_master
from tests.phones.conftest import MAC, Relay

# Not a multiple of anything: ranges at the end are easy to get wrong.
IMAGE = bytes((i * 7 + 3) % 251 for i in range(300_001))
PART = "3111-44500-001"  # VVX500, phones.md section 3


@dataclass
class Image:
    id: str
    sha256: str


async def _upload_and_bind(relay: Relay) -> Image:
    reply = await relay.api.call(
        "POST",
        "/images",
        data=IMAGE,
        content_type="application/octet-stream",
        params={"model": "VVX", "version": "6.4.3", "filename": "sip.ld"},
    )
    assert reply.status == 201, reply.text
    assert reply.body["sha256"] == hashlib.sha256(IMAGE).hexdigest()
    assert reply.body["size"] == len(IMAGE)
    bound = await relay.api.put("/deployment/global/-", {"profiles": ["Software-VVX-6.4.3"]})
    assert bound.status == 200, bound.text
    return Image(reply.body["id"], reply.body["sha256"])


@pytest.fixture
async def image(relay: Relay) -> Image:
    return await _upload_and_bind(relay)


def _image_path(image: Image, name: str = f"{PART}.sip.ld") -> str:
    return f"/images/{image.id}/{name}"


async def test_the_master_points_app_file_path_at_the_image(relay: Relay, image: Image) -> None:
    reply = await relay.curl("GET", f"/{MAC}.cfg")
    assert reply.status == 200
    assert parse_master(reply.body).app_file_path == f"images/{image.id}/sip.ld"


async def test_the_master_has_an_application_element_for_a_known_model(
    relay: Relay, image: Image
) -> None:
    reply = await relay.curl("GET", f"/{MAC}.cfg")
    master = parse_master(reply.body)
    assert [m.model for m in master.models] == ["VVX500"]
    assert b"<APPLICATION_VVX500" in reply.body
    assert app_file_path_for(master, "VVX500") == f"images/{image.id}/sip.ld"


async def test_the_default_master_names_the_image_without_a_model_element(
    relay: Relay, image: Image
) -> None:
    master = parse_master((await relay.curl("GET", "/000000000000.cfg")).body)
    assert master.app_file_path == f"images/{image.id}/sip.ld"
    assert master.models == ()


async def test_the_image_is_served_under_the_part_number_name(relay: Relay, image: Image) -> None:
    reply = await relay.curl("GET", _image_path(image))
    assert reply.status == 200
    assert reply.body == IMAGE
    assert reply.headers["etag"] == f'"{image.sha256}"'


async def test_the_image_is_served_over_plain_http_too(relay: Relay, image: Image) -> None:
    reply = await relay.curl("GET", _image_path(image), base=relay.http)
    assert reply.status == 200
    assert reply.body == IMAGE


async def test_a_range_request_gets_206_with_content_range(relay: Relay, image: Image) -> None:
    reply = await relay.curl("GET", _image_path(image), headers=["Range: bytes=0-99"])
    assert reply.status == 206
    assert reply.headers["content-range"] == f"bytes 0-99/{len(IMAGE)}"
    assert reply.body == IMAGE[:100]


async def test_a_range_to_the_end_gets_the_tail(relay: Relay, image: Image) -> None:
    start = len(IMAGE) - 1000
    reply = await relay.curl("GET", _image_path(image), headers=[f"Range: bytes={start}-"])
    assert reply.status == 206
    assert reply.headers["content-range"] == f"bytes {start}-{len(IMAGE) - 1}/{len(IMAGE)}"
    assert reply.body == IMAGE[start:]


async def test_if_none_match_with_the_sha256_gets_304(relay: Relay, image: Image) -> None:
    reply = await relay.curl(
        "GET", _image_path(image), headers=[f'If-None-Match: "{image.sha256}"']
    )
    assert reply.status == 304
    assert reply.body == b""


async def test_if_none_match_with_another_tag_gets_the_image(relay: Relay, image: Image) -> None:
    reply = await relay.curl("GET", _image_path(image), headers=['If-None-Match: "0000"'])
    assert reply.status == 200
    assert reply.body == IMAGE


async def test_head_gives_the_content_length(relay: Relay, image: Image) -> None:
    reply = await relay.curl("HEAD", _image_path(image))
    assert reply.status == 200
    assert int(reply.headers["content-length"]) == len(IMAGE)
    assert reply.headers["accept-ranges"] == "bytes"


async def test_an_unknown_image_id_gets_404(relay: Relay, image: Image) -> None:
    other = "0123456789abcdef" if image.id != "0123456789abcdef" else "fedcba9876543210"
    assert (await relay.curl("GET", f"/images/{other}/{PART}.sip.ld")).status == 404


async def test_an_image_id_that_is_not_hex_is_refused(relay: Relay, image: Image) -> None:
    assert (await relay.curl("GET", f"/images/NOT-AN-ID/{PART}.sip.ld")).status == 400


async def test_a_deleted_image_is_no_longer_served(relay: Relay, image: Image) -> None:
    assert (await relay.api.delete(f"/images/{image.id}")).status == 204
    assert (await relay.curl("GET", _image_path(image))).status == 404
    master = parse_master((await relay.curl("GET", f"/{MAC}.cfg")).body)
    assert master.app_file_path == ""


async def test_without_the_account_the_image_is_refused(relay: Relay, image: Image) -> None:
    reply = await relay.curl("GET", _image_path(image), auth=("phones", "wrong-password"))
    assert reply.status == 401
    assert reply.body != IMAGE
