"""Reading an HTTP answer with a size cap: the agent's one way, for the cloud's
answers and the phones' alike, so neither can make it buffer without bound."""

from __future__ import annotations

import aiohttp

CHUNK = 64 * 1024


async def read_capped(response: aiohttp.ClientResponse, limit: int) -> bytes | None:
    """The whole body, or None as soon as it is known to exceed `limit` bytes. Read to
    the end: `content.read(n)` returns only what is buffered (about 128 KiB)."""
    if response.content_length is not None and response.content_length > limit:
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.content.iter_chunked(CHUNK):
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)
