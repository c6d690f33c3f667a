"""SipNotifier: check-sync NOTIFY over UDP, RFC 3261 retransmission, final responses."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import cast

import pytest

from management_agent.phone_client import PhoneError
from management_agent.sip_notify import SipNotifier
from relay.proto.sip.message import parse_event, parse_message, response_for
from tests.ports import free_port

from .conftest import Lab, target

Reply = Callable[[bytes, int], bytes | None]


class Responder(asyncio.DatagramProtocol):
    """A UDP "phone" that records each datagram and answers with `reply(data, count)`."""

    def __init__(self, reply: Reply) -> None:
        self.reply = reply
        self.received: list[bytes] = []
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # The selector loop's datagram transport does not subclass DatagramTransport.
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.received.append(data)
        answer = self.reply(data, len(self.received))
        if answer is not None and self.transport is not None:
            self.transport.sendto(answer, addr)


@pytest.fixture
async def responder() -> AsyncIterator[Start]:
    transports: list[asyncio.DatagramTransport] = []

    async def start(reply: Reply) -> Responder:
        transport, protocol = await asyncio.get_running_loop().create_datagram_endpoint(
            lambda: Responder(reply), local_addr=("127.0.0.1", 0)
        )
        transports.append(transport)
        return protocol

    yield start
    for transport in transports:
        transport.close()
    await asyncio.sleep(0)


Start = Callable[[Reply], Awaitable[Responder]]


def _port(protocol: Responder) -> int:
    assert protocol.transport is not None
    return int(protocol.transport.get_extra_info("sockname")[1])


def _answer(status: int, reason: str) -> Reply:
    def reply(data: bytes, _count: int) -> bytes:
        return response_for(parse_message(data), status, reason, "tag1")

    return reply


async def test_sim_phone_without_rest_accepts_check_sync(
    lab: Lab, sip_notifier: SipNotifier
) -> None:
    phone = await lab.phone(model="SPIP650")
    await sip_notifier.check_sync(lab.target(phone))
    assert phone.check_syncs == 1
    assert phone.restarts == 0


async def test_reboot_asks_the_sim_phone_to_reboot(lab: Lab, sip_notifier: SipNotifier) -> None:
    phone = await lab.phone(model="SPIP650")
    await sip_notifier.check_sync(lab.target(phone), reboot=True)
    for _ in range(200):
        if phone.restarts:
            break
        await asyncio.sleep(0.01)
    assert phone.restarts == 1 and phone.last_restart_reason == "check-sync"


async def test_notify_carries_the_check_sync_event(responder: Start) -> None:
    phone = await responder(_answer(200, "OK"))
    await SipNotifier(local_host="127.0.0.1", sip_port=_port(phone)).check_sync(
        target(), reboot=True
    )
    request = parse_message(phone.received[0])
    assert request.method == "NOTIFY"
    event = request.header("event")
    assert event is not None
    assert parse_event(event) == ("check-sync", {"reboot": "true"})


async def test_lost_request_is_retransmitted_until_answered(responder: Start) -> None:
    def second_only(data: bytes, count: int) -> bytes | None:
        return _answer(200, "OK")(data, count) if count >= 2 else None

    phone = await responder(second_only)
    notifier = SipNotifier(local_host="127.0.0.1", sip_port=_port(phone), t1=0.02)
    await notifier.check_sync(target())
    assert len(phone.received) == 2
    assert phone.received[0] == phone.received[1]


async def test_no_answer_is_offline_after_64_t1_with_doubling_retransmits(responder: Start) -> None:
    phone = await responder(lambda _data, _count: None)
    notifier = SipNotifier(local_host="127.0.0.1", sip_port=_port(phone), t1=0.01)
    started = asyncio.get_running_loop().time()
    with pytest.raises(PhoneError, match="device offline: no answer to SIP NOTIFY"):
        await notifier.check_sync(target())
    elapsed = asyncio.get_running_loop().time() - started
    assert 0.6 <= elapsed < 1.5
    # Sent at 0, 0.01, 0.03, 0.07, 0.15, 0.31 and 0.63 s (timer E doubling from T1).
    assert 6 <= len(phone.received) <= 8


async def test_other_final_response_is_a_failure_with_the_code(responder: Start) -> None:
    phone = await responder(_answer(489, "Bad Event"))
    with pytest.raises(PhoneError, match="489 Bad Event") as caught:
        await SipNotifier(local_host="127.0.0.1", sip_port=_port(phone)).check_sync(target())
    assert not caught.value.offline


async def test_provisional_then_final_response_succeeds(responder: Start) -> None:
    def trying_first(data: bytes, count: int) -> bytes | None:
        return _answer(100 if count == 1 else 200, "Trying" if count == 1 else "OK")(data, count)

    phone = await responder(trying_first)
    notifier = SipNotifier(local_host="127.0.0.1", sip_port=_port(phone), t1=0.01, t2=0.02)
    await notifier.check_sync(target())
    assert len(phone.received) == 2


async def test_responses_of_other_transactions_are_ignored(responder: Start) -> None:
    def stray_then_real(data: bytes, count: int) -> bytes | None:
        request = parse_message(data)
        if count == 1:
            stray = data.replace((request.header("call-id") or "").encode(), b"someone-else")
            return response_for(parse_message(stray), 200, "OK", "t")
        return response_for(request, 486, "Busy Here", "t")

    phone = await responder(stray_then_real)
    notifier = SipNotifier(local_host="127.0.0.1", sip_port=_port(phone), t1=0.01)
    with pytest.raises(PhoneError, match="486"):
        await notifier.check_sync(target())


async def test_port_unreachable_is_offline_at_once() -> None:
    notifier = SipNotifier(local_host="127.0.0.1", sip_port=free_port(socket.SOCK_DGRAM), t1=0.5)
    started = asyncio.get_running_loop().time()
    with pytest.raises(PhoneError, match="device offline: nothing listens for SIP"):
        await notifier.check_sync(target())
    assert asyncio.get_running_loop().time() - started < 5.0


async def test_closed_notifier_refuses_to_send(responder: Start) -> None:
    phone = await responder(_answer(200, "OK"))
    notifier = SipNotifier(local_host="127.0.0.1", sip_port=_port(phone))
    await notifier.aclose()
    with pytest.raises(PhoneError, match="closed"):
        await notifier.check_sync(target())
    assert phone.received == []
