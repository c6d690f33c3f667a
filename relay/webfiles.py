"""Files served over HTTP with Range and ETag, shared by the cloud's provisioning
service and the relay's phone-facing listeners (phones resume firmware downloads
with Range; RFC 9110 sections 13-14).
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import BinaryIO

from aiohttp import web

CHUNK = 1024 * 1024


def byte_range(header: str, size: int) -> tuple[int, int] | None:
    """One `bytes=a-b` range (the only form phones send); None if absent or unusable."""
    if not header.startswith("bytes=") or "," in header:
        return None
    first, _, last = header[6:].strip().partition("-")
    try:
        if first == "":
            length = int(last)
            return (max(0, size - length), size - 1) if length > 0 else None
        start = int(first)
        end = int(last) if last else size - 1
    except ValueError:
        return None
    if start > end or start >= size:
        return None
    return start, min(end, size - 1)


async def send_file(
    request: web.Request, file: Path, etag: str | None = None
) -> web.StreamResponse:
    """Stream a file in large chunks (1 MiB reads off the loop, large TLS writes: the
    stdlib-loop FileResponse path is several times slower), with Range and ETag."""
    try:
        fh = await asyncio.to_thread(file.open, "rb")
    except FileNotFoundError:
        return web.Response(status=404)
    try:
        return await stream_file(request, fh, etag)
    finally:
        fh.close()


async def stream_file(request: web.Request, fh: BinaryIO, etag: str | None) -> web.StreamResponse:
    size = os.fstat(fh.fileno()).st_size
    headers = {"Accept-Ranges": "bytes"}
    if etag is not None:
        headers["ETag"] = f'"{etag}"'
        if request.headers.get("If-None-Match") == headers["ETag"]:
            return web.Response(status=304, headers=headers)
    span = byte_range(request.headers.get("Range", ""), size)
    status, start, end = (206, *span) if span else (200, 0, size - 1)
    if span:
        headers["Content-Range"] = f"bytes {start}-{end}/{size}"
    response = web.StreamResponse(status=status, headers=headers)
    response.content_type = "application/octet-stream"
    response.content_length = end - start + 1 if size else 0
    await response.prepare(request)
    if request.method == "HEAD" or size == 0:
        await response.write_eof()
        return response
    fh.seek(start)
    remaining = end - start + 1
    while remaining > 0:
        chunk = await asyncio.to_thread(fh.read, min(CHUNK, remaining))
        if not chunk:
            break
        remaining -= len(chunk)
        await response.write(chunk)
    await response.write_eof()
    return response
