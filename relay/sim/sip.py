"""The simulated phone's SIP listener: just check-sync NOTIFY over UDP (phones.md section 4).

Answers, which phones.md leaves open:
- NOTIFY with `Event: check-sync` -> 200 OK, then the phone re-reads its
  configuration (or reboots: `;reboot=true` or the alwaysReboot parameter);
  a retransmission (same Call-ID and CSeq) is answered again but acted on once;
- NOTIFY with another or no event -> 489 Bad Event;
- OPTIONS -> 200 OK (a keep-alive probe); other methods -> 405 with Allow;
- a request that parses but lacks Via, From, To, Call-ID or CSeq -> 400;
- responses and anything parse_message refuses (garbage, over 8 KiB) -> no answer.
"""

from __future__ import annotations

import asyncio
import secrets
from collections import OrderedDict
from collections.abc import Callable
from typing import cast

from relay.proto.sip.message import SipError, SipMessage, parse_event, parse_message, response_for

REQUIRED = ("via", "from", "to", "call-id", "cseq")
ALLOW = "NOTIFY, OPTIONS"
_REMEMBERED = 64

Address = tuple[str, int]


def answer_datagram(
    data: bytes, seen: OrderedDict[tuple[str, str], None]
) -> tuple[bytes | None, bool | None]:
    """(reply, check-sync) for one datagram; check-sync is None, or whether a reboot was asked.

    `seen` remembers recent (Call-ID, CSeq) pairs so retransmissions do not act twice.
    """
    try:
        message = parse_message(data)
    except SipError:
        return None, None
    if message.method is None:
        return None, None
    tag = secrets.token_hex(6)
    if any(message.header(name) is None for name in REQUIRED):
        return response_for(message, 400, "Bad Request", tag), None
    if message.method == "OPTIONS":
        return response_for(message, 200, "OK", tag, extra_headers=[("Allow", ALLOW)]), None
    if message.method != "NOTIFY":
        return response_for(
            message, 405, "Method Not Allowed", tag, extra_headers=[("Allow", ALLOW)]
        ), None
    package, params = _event(message)
    if package != "check-sync":
        return response_for(
            message, 489, "Bad Event", tag, extra_headers=[("Allow-Events", "check-sync")]
        ), None
    reply = response_for(message, 200, "OK", tag)
    key = (message.header("call-id") or "", message.header("cseq") or "")
    if key in seen:
        return reply, None
    seen[key] = None
    while len(seen) > _REMEMBERED:
        seen.popitem(last=False)
    return reply, params.get("reboot", "").lower() == "true"


def _event(message: SipMessage) -> tuple[str, dict[str, str]]:
    value = message.header("event")
    if value is None:
        return "", {}
    try:
        package, params = parse_event(value)
    except SipError:
        return "", {}
    return package, dict(params)


class _Protocol(asyncio.DatagramProtocol):
    def __init__(self, on_check_sync: Callable[[bool], None]) -> None:
        self._on_check_sync = on_check_sync
        self._transport: asyncio.DatagramTransport | None = None
        self._seen: OrderedDict[tuple[str, str], None] = OrderedDict()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # The selector loop's datagram transport does not subclass DatagramTransport.
        self._transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: Address) -> None:
        reply, reboot = answer_datagram(data, self._seen)
        if reply is not None and self._transport is not None:
            self._transport.sendto(reply, addr)
        if reboot is not None:
            self._on_check_sync(reboot)

    def error_received(self, exc: Exception) -> None:
        """ICMP errors for earlier replies: the sender went away; nothing to do."""


class SipListener:
    """UDP on the phone's address; `start()` after boot, `close()` to go offline."""

    def __init__(self, on_check_sync: Callable[[bool], None]) -> None:
        self._on_check_sync = on_check_sync
        self._transport: asyncio.DatagramTransport | None = None

    async def start(self, host: str, port: int) -> int:
        """Listen on host:port (0 picks a port); returns the port."""
        loop = asyncio.get_running_loop()
        transport, _protocol = await loop.create_datagram_endpoint(
            lambda: _Protocol(self._on_check_sync), local_addr=(host, port)
        )
        self._transport = transport
        return int(transport.get_extra_info("sockname")[1])

    async def close(self) -> None:
        transport, self._transport = self._transport, None
        if transport is not None:
            transport.close()
            await asyncio.sleep(0)
