"""Files served over HTTP with Range and ETag, shared by the cloud's provisioning
service and the relay's phone-facing listeners (phones resume firmware downloads
with Range; RFC 9110 sections 13-14).
"""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path
from typing import BinaryIO

from aiohttp import web

from relay.logs import event
from relay.tlsfile import send_sealed

log = logging.getLogger("relay.webfiles")

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
    """Serve a file with Range and ETag at least as fast as nginx would (issue 6).

    Plain HTTP uses sendfile(2). TLS bodies are encrypted and sent by worker threads
    (relay.tlsfile), on every core, where asyncio would encrypt on the event loop. Any
    other transport gets 1 MiB writes (aiohttp's FileResponse reads 16 KiB per thread
    hop: several times slower). A file that shrinks during its body raises EOFError
    and the connection is closed: the client never takes a short body for a whole one.
    """
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
    try:
        await _send_body(request, response, fh, start, end - start + 1)
    except ConnectionError as exc:
        # The phone hung up (or reset) mid-body; it resumes with Range. The connection is
        # closed so that a body cut short is never followed by another response.
        event(
            log,
            "download_dropped",
            logging.INFO,
            source=request.remote,
            path=request.path[:200],
            reason=str(exc) or type(exc).__name__,
        )
        response.force_close()
        if request.transport is not None:
            request.transport.abort()
        return response
    await response.write_eof()
    return response


async def _send_body(
    request: web.Request, response: web.StreamResponse, fh: BinaryIO, start: int, count: int
) -> None:
    transport = request.transport
    if transport is None or transport.is_closing():
        raise ConnectionResetError("the client closed the connection before the body")
    if transport.get_extra_info("sslcontext") is None:
        # Native sendfile on a socket transport; asyncio falls back to reads otherwise.
        sent = await asyncio.get_running_loop().sendfile(transport, fh, start, count)
        if sent != count:
            raise EOFError(f"the file ended at byte {start + sent} during the body")
        return
    if await send_sealed(transport, fh.fileno(), start, count):
        return
    fh.seek(start)
    remaining = count
    while remaining > 0:
        chunk = await asyncio.to_thread(fh.read, min(CHUNK, remaining))
        if not chunk:
            raise EOFError(f"the file ended at byte {start + count - remaining} during the body")
        remaining -= len(chunk)
        await response.write(chunk)
