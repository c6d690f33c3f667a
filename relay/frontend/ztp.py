"""The relay's zero-touch redirect: a local copy of the cloud's ZTP directory, kept in
sync, and the phone-facing lookup it answers from (phones.md section 1 item 5;
docs/agent-link.md "ZTP directory").

A phone whose DHCP lease and DHCPINFORM named no boot server asks
`GET /ztp/v1/devices/{mac}` and gets its provisioning URL and account. The
answers come from the last good copy, in memory and on disk, so phones keep
finding their server while the cloud is away and after a restart; the copy is
replaced only by a complete directory that passed the same rules the cloud
applied. It holds the profiles' passwords: it is written 0600 and atomically
(relay.secretfile), and no password is ever logged.

The lookup is by MAC alone, as the vendor's redirect service is: anyone who can
reach the listener and guesses a MAC gets that phone's provisioning account, so
mount it on the phones' LAN-side listener only.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from relay.cloud.rules.errors import RuleError
from relay.cloud.rules.ztp import ZtpAnswer, ZtpDirectoryData, parse_directory, parse_mac
from relay.logs import event
from relay.secretfile import write_secret

log = logging.getLogger("relay.ztp")

LOOKUP_PATH = "/ztp/v1/devices/{mac}"
# The saved copy: the cloud's answer (capped at 16 MiB by the agent's link) and its ETag.
MAX_COPY = 32 * 1024 * 1024
MAX_ETAG = 256


Fetch = Callable[[str | None], Awaitable[tuple[str | None, Any] | None]]


class ZtpSyncError(Exception):
    """The directory could not be fetched (cloud away, relay revoked): keep the copy."""


def _error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message}}, status=status)


class ZtpDirectory:
    """The synced copy at `path`: `load()` it at start, `run()` keeps it in sync, and
    `lookup()` / `handle_lookup()` answer from it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._data = ZtpDirectoryData(0, {})
        self._etag: str | None = None
        self._down = False

    @property
    def version(self) -> int:
        return self._data.version

    @property
    def size(self) -> int:
        """How many phones have a redirect."""
        return len(self._data.devices)

    def load(self) -> bool:
        """Take the saved copy; a missing one leaves the directory empty, and a damaged
        one is logged and ignored (the next sync replaces it)."""
        try:
            if self.path.stat().st_size > MAX_COPY:
                raise ValueError(f"larger than {MAX_COPY} bytes")
            saved = json.loads(self.path.read_bytes())
            data = parse_directory(saved.get("directory"))
            etag = saved.get("etag")
        except FileNotFoundError:
            return False
        except (ValueError, RecursionError, AttributeError, OSError) as exc:
            reason = exc.message if isinstance(exc, RuleError) else str(exc)
            event(log, "ztp_copy_damaged", logging.WARNING, path=str(self.path), error=reason)
            return False
        self._data = data
        self._etag = etag if isinstance(etag, str) and len(etag) <= MAX_ETAG else None
        event(log, "ztp_copy_loaded", version=data.version, devices=len(data.devices))
        return True

    def lookup(self, mac: str) -> ZtpAnswer | None:
        """The answer for a MAC as `parse_mac` gives it (12 lower-case hex digits)."""
        return self._data.devices.get(mac)

    def _accept(self, etag: str | None, value: Any) -> ZtpDirectoryData:
        """Check and save a fetched directory (on a worker thread: it may be megabytes)."""
        try:
            data = parse_directory(value)
        except RuleError as exc:
            raise ZtpSyncError(f"the cloud's ZTP directory is malformed: {exc.message}") from exc
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        write_secret(self.path, json.dumps({"etag": etag, "directory": data.to_wire()}))
        return data

    async def sync(self, fetch: Fetch) -> bool:
        """One round; True when the directory changed (it is saved before it is used).
        Raises ZtpSyncError and then keeps the copy it had."""
        fetched = await fetch(self._etag)
        if fetched is None:
            return False
        etag, value = fetched
        data = await asyncio.to_thread(self._accept, etag, value)
        self._data, self._etag = data, etag
        event(log, "ztp_directory_updated", version=data.version, devices=len(data.devices))
        return True

    async def run(
        self,
        fetch: Fetch,
        interval: float,
        *,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        """Sync every `interval` seconds until cancelled. An outage is logged once when
        it starts and once when it ends; meanwhile phones are answered from the last
        good copy."""
        while True:
            try:
                await self.sync(fetch)
                self._link_up()
            except (ZtpSyncError, OSError) as exc:
                self._link_down(str(exc))
            await sleep(interval)

    def _link_down(self, error: str) -> None:
        if not self._down:
            event(
                log,
                "ztp_sync_down",
                logging.WARNING,
                error=error,
                version=self.version,
                devices=self.size,
            )
        self._down = True

    def _link_up(self) -> None:
        if self._down:
            event(log, "ztp_sync_recovered", version=self.version, devices=self.size)
        self._down = False

    async def handle_lookup(self, request: web.Request) -> web.Response:
        """`GET /ztp/v1/devices/{mac}`: 200 with the URL and account, 404 for a MAC
        without a redirect, 400 for anything that is not a MAC."""
        try:
            mac = parse_mac(request.match_info["mac"])
        except RuleError as exc:
            return _error(400, exc.code, exc.message)
        answer = self.lookup(mac)
        if answer is None:
            event(log, "ztp_lookup_unknown", logging.DEBUG, mac=mac, source=request.remote)
            return _error(404, "not_found", f"no zero-touch redirect for {mac}")
        event(log, "ztp_lookup", mac=mac, url=answer.url, source=request.remote)
        return web.json_response(
            {"mac": mac, **answer.to_wire()}, headers={"Cache-Control": "no-store"}
        )


def ztp_routes(directory: ZtpDirectory) -> list[web.RouteDef]:
    """The phone-facing lookup route, answered from `directory`."""
    return [web.get(LOOKUP_PATH, directory.handle_lookup, allow_head=False)]
