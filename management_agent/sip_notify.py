"""check-sync by SIP NOTIFY, for phones without the REST API (phones.md section 4).

The agent sends an out-of-dialog NOTIFY with `Event: check-sync` (and
`;reboot=true` when asked) over UDP and waits for the final response. NOTIFY
is a non-INVITE request, so the client transaction follows RFC 3261 section
17.1.2: retransmit after T1, doubling up to T2 (timer E), every T2 once a
provisional response arrived, and give up at 64*T1 (timer F, 32 s by default).

Each transaction has its own ephemeral socket connected to the phone, so
only the phone's datagrams reach it and concurrent notifications never mix
their answers; a response must also carry this transaction's Call-ID and Via
branch (RFC 3261 section 17.1.3). Call-ID, branch and tag come from `secrets`:
a sender on the LAN cannot guess them to forge an answer. Messages are built and parsed by
relay.proto.sip.message, shared with the phone simulator.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import socket

from relay.logs import event
from relay.proto.sip.message import SipError, SipMessage, check_sync_notify, parse_message
from relay.sync.messages import Target

from .phone_client import PhoneError

# RFC 3261 section 17.1.1.1: T1 is the RTT estimate, T2 the cap for non-INVITE retransmits.
T1 = 0.5
T2 = 4.0

log = logging.getLogger("management_agent.sip")


class _Transaction(asyncio.DatagramProtocol):
    """Collects the final response matching one NOTIFY; notes provisional ones."""

    def __init__(self, call_id: str, branch: str) -> None:
        self.call_id = call_id
        self.branch = branch
        self.final: asyncio.Future[SipMessage] = asyncio.get_running_loop().create_future()
        self.provisional = False

    def datagram_received(self, data: bytes, addr: tuple[str | object, int]) -> None:
        try:
            message = parse_message(data)
        except SipError:
            return
        if message.status is None or not self._matches(message):
            return
        if message.status < 200:
            self.provisional = True
        elif not self.final.done():
            self.final.set_result(message)

    def error_received(self, exc: Exception) -> None:
        """ICMP port unreachable on the connected socket: nothing listens for SIP there."""
        if not self.final.done():
            self.final.set_exception(exc)

    def _matches(self, message: SipMessage) -> bool:
        """RFC 3261 section 17.1.3: the top Via branch and the CSeq method identify it."""
        via = message.header("via") or ""
        cseq = (message.header("cseq") or "").split()
        return (
            message.header("call-id") == self.call_id
            and f"branch={self.branch}" in via
            and cseq[-1:] == ["NOTIFY"]
        )


class SipNotifier:
    """Sends check-sync NOTIFYs from `local_host` to each phone's `sip_port`."""

    def __init__(
        self,
        *,
        local_host: str,
        sip_port: int = 5060,
        t1: float = T1,
        t2: float = T2,
    ) -> None:
        self._local_host = local_host
        self._sip_port = sip_port
        self._t1 = t1
        self._t2 = max(t1, t2)
        self._closed = False

    async def aclose(self) -> None:
        """Refuse further notifications; each one in progress closes its own socket."""
        self._closed = True

    async def check_sync(self, target: Target, *, reboot: bool = False) -> None:
        """Tell the phone to re-read its configuration; PhoneError unless it answers 2xx."""
        try:
            await self._notify(target, reboot)
        except PhoneError as exc:
            event(
                log,
                "sip_notify_failed",
                logging.WARNING,
                mac=target.mac,
                address=target.address,
                reason=exc.reason,
            )
            raise

    async def _notify(self, target: Target, reboot: bool) -> None:
        if self._closed:
            raise PhoneError("the SIP notifier is closed")
        loop = asyncio.get_running_loop()
        call_id = secrets.token_hex(12)
        branch = "z9hG4bK" + secrets.token_hex(10)
        try:
            transport, protocol = await loop.create_datagram_endpoint(
                lambda: _Transaction(call_id, branch),
                local_addr=(self._local_host, 0),
                remote_addr=(target.address, self._sip_port),
                family=socket.AF_INET6 if ":" in target.address else socket.AF_INET,
            )
        except OSError as exc:
            raise PhoneError(f"cannot send SIP NOTIFY: {exc.strerror or exc}") from None
        try:
            local_port = transport.get_extra_info("sockname")[1]
            try:
                request = check_sync_notify(
                    target_host=target.address,
                    target_port=self._sip_port,
                    local_host=self._local_host,
                    local_port=local_port,
                    call_id=call_id,
                    branch=branch,
                    from_tag=secrets.token_hex(6),
                    reboot=reboot,
                )
            except SipError as exc:
                raise PhoneError(f"cannot build SIP NOTIFY: {exc}") from None
            answer = await self._transact(transport, protocol, request)
        finally:
            transport.close()
        assert answer.status is not None
        if not 200 <= answer.status < 300:
            raise PhoneError(
                f"phone answered SIP NOTIFY with {answer.status} {answer.reason[:80]}".rstrip()
            )

    async def _transact(
        self, transport: asyncio.DatagramTransport, protocol: _Transaction, request: bytes
    ) -> SipMessage:
        """Timers E and F of RFC 3261 section 17.1.2.2."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 64 * self._t1
        interval = self._t1
        try:
            while True:
                transport.sendto(request)
                wait = min(interval, deadline - loop.time())
                done, _pending = await asyncio.wait({protocol.final}, timeout=max(wait, 0))
                if done:
                    return protocol.final.result()
                if loop.time() >= deadline:
                    raise PhoneError("device offline: no answer to SIP NOTIFY")
                interval = self._t2 if protocol.provisional else min(2 * interval, self._t2)
        except OSError:
            raise PhoneError(
                f"device offline: nothing listens for SIP on port {self._sip_port}"
            ) from None
        finally:
            protocol.final.cancel()
