"""Images on the relay for tests of the front end: `publish` writes them the way the
download agent does (download_agent.store: the verified blob under `blobs/<sha256>`
and an entry in `index.json`) for rigs without an agent; `synced` has a running
`relay up` fetch them for real."""

from __future__ import annotations

import asyncio
import hashlib
import io
from pathlib import Path

from relay.sync.images import BLOBS, INDEX_FILE, CachedImage, index_bytes, parse_index
from tests.phones.conftest import Relay

SYNC_TIMEOUT = 60.0


def publish(
    root: Path,
    data: bytes,
    *,
    filename: str = "sip.ld",
    model: str = "VVX",
    version: str = "6.4.3",
    image_id: str | None = None,
) -> CachedImage:
    """Add `data` to the published images under `root`; returns its index entry."""
    sha256 = hashlib.sha256(data).hexdigest()
    image = CachedImage(image_id or sha256[:16], model, version, filename, len(data), sha256)
    (root / BLOBS).mkdir(parents=True, exist_ok=True)
    (root / BLOBS / sha256).write_bytes(data)
    index = root / INDEX_FILE
    known = parse_index(index.read_bytes()) if index.exists() else ()
    kept = tuple(i for i in known if i.id != image.id)
    tmp = index.with_suffix(".tmp")
    tmp.write_bytes(index_bytes((*kept, image)))
    tmp.replace(index)
    return image


async def synced(relay: Relay, data: bytes) -> str:
    """`data` as the tenant's whole relay image set, once the relay's download agent has
    it published (the real path: upload, PUT /relay-images, sync); its image ID."""
    version = "t" + hashlib.sha256(data).hexdigest()[:12]
    uploaded = await relay.api.call(
        "POST",
        "/images",
        data=io.BytesIO(data),
        content_type="application/octet-stream",
        params={"model": "VVX", "version": version, "filename": "sip.ld"},
    )
    assert uploaded.status == 201, uploaded.text
    image_id = str(uploaded.body["id"])
    chosen = await relay.api.put("/relay-images", [image_id])
    assert chosen.status == 200, chosen.text
    async with asyncio.timeout(SYNC_TIMEOUT):
        while True:
            states = await relay.api.get(f"/relays/{relay.facts['relay_id']}/images")
            if [s["status"] for s in states.body] == ["synced"]:
                return image_id
            await asyncio.sleep(0.05)
