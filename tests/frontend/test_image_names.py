"""Requests for names outside the served set are rejected in every protocol (issue 6,
"Faults and bad input"): the relay serves from its disk only the names of its
published images (relay.frontend.firmware: `images/<id>/<file>`, `<part>.<file>`),
never the download agent's own files (`index.json`, `status.json`, `blobs/<sha256>`,
`partial/<sha256>.part`), another name under an image's directory, an image it has
not published, or a path that climbs out of `images/`.

One `relay up` (tests.frontend.test_relay_https) serves HTTPS, FTP and TFTP from
`<data-dir>/images`, where its download agent keeps the tenant's relay image set.
The set holds two images the cloud only knows by URL (it has no copy of their
bytes, so whatever answers with them answered from the relay's disk): one is
published there (tests/frontend/published.py) and one is still syncing, with a
partial download on disk. Requests go through curl (HTTPS and FTP) and tftp-hpa.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.frontend.published import publish
from tests.frontend.test_ftp_frontend import need, run
from tests.frontend.test_relay_https import relayed  # noqa: F401 - the fixture
from tests.phones.conftest import (
    Relay,
    relay_up,  # noqa: F401 - the fixture
)
from tests.ports import free_port

PART = "3111-44500-001"  # VVX500, phones.md section 3
FIRMWARE = bytes((i * 11 + 7) % 251 for i in range(200_003))
SYNCING = bytes((i * 5 + 1) % 241 for i in range(100_001))
HALF = len(SYNCING) // 2
UNKNOWN_ID = "0123456789abcdef"
TFTP_CLIENT_TIMEOUT = 30.0

SERVED = ("images/{id}/sip.ld", f"images/{{id}}/{PART}.sip.ld", f"{PART}.sip.ld")
REFUSED = (
    "blobs/{sha}",
    "index.json",
    "status.json",
    "partial/{syncing_sha}.part",
    "images/{id}/other.ld",
    f"images/{UNKNOWN_ID}/sip.ld",
    "images/{syncing_id}/sip.ld",
    "images/{id}/../../index.json",
    "images/{id}/../../blobs/{sha}",
)
PERCENT_ENCODED = (
    "%62lobs/{sha}",
    "blobs%2F{sha}",
    "index%2Ejson",
    "status%2ejson",
    "partial%2F{syncing_sha}.part",
    "images/{id}/..%2F..%2Findex.json",
    "images/{id}/%2e%2e/%2e%2e/index.json",
    "images%2F{id}%2F..%2F..%2Fblobs%2F{sha}",
    "images/{id}/..%5C..%5Cindex.json",
    "images/{id}/other.ld%00sip.ld",
)


@dataclass
class Served:
    """The relay, what its disk holds, and the values the name templates use."""

    relay: Relay
    images: Path
    names: dict[str, str]

    def name(self, template: str) -> str:
        return template.format(**self.names)

    def on_disk(self) -> list[bytes]:
        """Every file under the relay's image directory, as bytes."""
        return [p.read_bytes() for p in sorted(self.images.rglob("*")) if p.is_file()]


async def register(relay: Relay, data: bytes, version: str) -> str:
    """An image the cloud knows by URL only (nothing listens there); its ID."""
    body = {
        "model": "VVX",
        "version": version,
        "filename": "sip.ld",
        "size": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "url": f"http://127.0.0.1:{free_port()}/sip.ld",
    }
    reply = await relay.api.post("/images", body)
    assert reply.status == 201, reply.text
    return str(reply.body["id"])


def agent_state(images: Path, image_id: str) -> str | None:
    try:
        status = json.loads((images / "status.json").read_bytes())
    except (OSError, ValueError):
        return None
    states = {entry["id"]: entry["status"] for entry in status["images"]}
    return states.get(image_id)


async def until_state(images: Path, image_id: str, wanted: str) -> None:
    for _ in range(3000):
        if agent_state(images, image_id) == wanted:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{image_id} never {wanted}: {agent_state(images, image_id)}")


@pytest.fixture
async def served(relayed: Relay) -> AsyncIterator[Served]:  # noqa: F811
    """The relay image set chosen through the API; once the agent has tried (and failed)
    to fetch both images, one is published on disk and the other half downloaded. The
    agent then adopts the published one as synced and keeps the other's partial."""
    images = Path(relayed.facts["data_dir"]) / "images"
    image_id = await register(relayed, FIRMWARE, "6.4.3")
    syncing_id = await register(relayed, SYNCING, "6.4.4")
    reply = await relayed.api.put("/relay-images", [image_id, syncing_id])
    assert reply.status == 200, reply.text
    await until_state(images, image_id, "failed")
    publish(images, FIRMWARE, image_id=image_id, filename="sip.ld", version="6.4.3")
    syncing_sha = hashlib.sha256(SYNCING).hexdigest()
    (images / "partial" / f"{syncing_sha}.part").write_bytes(SYNCING[:HALF])
    await until_state(images, image_id, "synced")
    names = {
        "id": image_id,
        "sha": hashlib.sha256(FIRMWARE).hexdigest(),
        "syncing_id": syncing_id,
        "syncing_sha": syncing_sha,
    }
    yield Served(relayed, images, names)


# -- HTTPS ---------------------------------------------------------------------------


async def https_get(served: Served, path: str) -> tuple[int, bytes]:
    base = str(served.relay.facts["relay_https"])
    reply = await served.relay.curl("GET", "/" + path, base=base, check=False)
    return reply.status, reply.body


@pytest.mark.parametrize("template", SERVED)
async def test_https_serves_a_published_image_under_its_names(
    served: Served, template: str
) -> None:
    status, body = await https_get(served, served.name(template))
    assert (status, hashlib.sha256(body).hexdigest()) == (200, served.names["sha"])


@pytest.mark.parametrize("template", REFUSED + PERCENT_ENCODED)
async def test_https_serves_no_other_name_from_the_relays_disk(
    served: Served, template: str
) -> None:
    status, body = await https_get(served, served.name(template))
    assert status in (400, 404), body[:200]
    assert body not in served.on_disk()
    assert FIRMWARE[:1024] not in body and SYNCING[:1024] not in body


# -- FTP -----------------------------------------------------------------------------


async def ftp_get(served: Served, path: str, out: Path) -> int:
    """curl's exit status for RETR of `path` (one command, no CWD: --ftp-method nocwd)."""
    user, password = served.relay.account
    ran = await run(
        need("curl", "curl"),
        "--silent",
        "--show-error",
        "--max-time",
        "30",
        "--path-as-is",
        "--ftp-method",
        "nocwd",
        "--user",
        f"{user}:{password}",
        "-o",
        str(out),
        str(served.relay.facts["relay_ftp"]) + path,
    )
    return ran.returncode


@pytest.mark.parametrize("template", SERVED)
async def test_ftp_serves_a_published_image_under_its_names(
    served: Served, template: str, tmp_path: Path
) -> None:
    out = tmp_path / "got"
    assert await ftp_get(served, served.name(template), out) == 0
    assert hashlib.sha256(out.read_bytes()).hexdigest() == served.names["sha"]


@pytest.mark.parametrize("template", REFUSED)
async def test_ftp_answers_550_to_any_other_name(
    served: Served, template: str, tmp_path: Path
) -> None:
    out = tmp_path / "got"
    assert await ftp_get(served, served.name(template), out) == 78  # RETR answered 550
    assert not out.exists() or out.read_bytes() == b""


# -- TFTP ----------------------------------------------------------------------------


@dataclass(frozen=True)
class TftpAnswer:
    returncode: int
    output: str


async def tftp_get(served: Served, name: str, out: Path) -> TftpAnswer:
    """tftp-hpa's `get`: it prints the server's ERROR packet ("Error code N: ...")."""
    tftp = need("tftp", "tftp-hpa")
    port = str(served.relay.facts["relay_tftp"]).rstrip("/").rsplit(":", 1)[1]
    process = await asyncio.create_subprocess_exec(
        tftp,
        "-m",
        "binary",
        "127.0.0.1",
        port,
        "-c",
        "get",
        name,
        str(out),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), TFTP_CLIENT_TIMEOUT)
    return TftpAnswer(process.returncode or 0, output.decode("utf-8", "replace"))


async def tftp_version() -> None:
    process = await asyncio.create_subprocess_exec(
        need("tftp", "tftp-hpa"),
        "-V",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    version, _ = await asyncio.wait_for(process.communicate(), 10)
    if b"tftp-hpa" not in version:
        pytest.skip("the tftp program is not tftp-hpa's (apt-get install tftp-hpa)")


@pytest.mark.parametrize("template", SERVED)
async def test_tftp_serves_a_published_image_under_its_names(
    served: Served, template: str, tmp_path: Path
) -> None:
    await tftp_version()
    out = tmp_path / "got"
    answer = await tftp_get(served, served.name(template), out)
    assert "Error" not in answer.output, answer.output
    assert hashlib.sha256(out.read_bytes()).hexdigest() == served.names["sha"]


@pytest.mark.parametrize("template", REFUSED)
async def test_tftp_answers_an_error_to_any_other_name(
    served: Served, template: str, tmp_path: Path
) -> None:
    await tftp_version()
    out = tmp_path / "got"
    answer = await tftp_get(served, served.name(template), out)
    assert any(f"Error code {code}:" in answer.output for code in (1, 2)), (
        answer.output
    )  # RFC 1350: 1 file not found, 2 access violation
    assert not out.exists() or out.read_bytes() == b""
