"""check-sync NOTIFY to a simulated phone over real loopback UDP (phones.md section 4)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable, Iterator

import pytest

from relay.proto.sip.message import SipMessage, check_sync_notify, parse_message
from relay.sim.phone import PhoneSpec, SimPhone

from .conftest import MAC, ProvServer, config
from .restkit import rest_files, serving_phone, wait_for

Spec = Callable[..., PhoneSpec]
ANSWER_SECONDS = 3.0
NO_ANSWER_SECONDS = 0.3


def notify_for(phone: SimPhone, sock: socket.socket, **changes: object) -> bytes:
    address = phone.sip_address
    assert address is not None
    local_host, local_port = sock.getsockname()
    fields: dict[str, object] = {
        "target_host": address[0],
        "target_port": address[1],
        "local_host": local_host,
        "local_port": local_port,
        "call_id": "cs-1@test",
        "branch": "z9hG4bKtest1",
        "from_tag": "ft1",
    }
    fields.update(changes)
    return check_sync_notify(**fields)  # type: ignore[arg-type]


async def exchange(
    phone: SimPhone, sock: socket.socket, datagram: bytes, wait: float = ANSWER_SECONDS
) -> SipMessage | None:
    """Send one datagram from `sock`; the phone's answer, or None if none came in `wait` s."""
    address = phone.sip_address
    assert address is not None
    loop = asyncio.get_running_loop()
    await loop.sock_sendto(sock, datagram, address)
    try:
        async with asyncio.timeout(wait):
            data = await loop.sock_recv(sock, 65536)
    except TimeoutError:
        return None
    return parse_message(data)


@pytest.fixture
def udp() -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.setblocking(False)
    yield sock
    sock.close()


async def test_check_sync_gets_200_ok_and_reprovisions(
    prov: ProvServer, spec: Spec, udp: socket.socket
) -> None:
    rest_files(prov)
    async with serving_phone(spec, source_ip="127.20.2.1") as phone:
        prov.files[f"{MAC}-web.cfg"] = config(voice__volume="7")
        answer = await exchange(phone, udp, notify_for(phone, udp))
        await wait_for(lambda: phone.report().polls == 1)

    assert answer is not None
    assert (answer.status, answer.reason) == (200, "OK")
    assert answer.header("Call-ID") == "cs-1@test"
    assert answer.header("CSeq") == "1 NOTIFY"
    assert ";tag=" in (answer.header("To") or "")
    assert phone.check_syncs == 1
    assert phone.restarts == 0
    assert phone.parameters["voice.volume"] == "7"


async def test_a_retransmitted_notify_is_answered_but_acted_on_once(
    prov: ProvServer, spec: Spec, udp: socket.socket
) -> None:
    rest_files(prov)
    async with serving_phone(spec, source_ip="127.20.2.2") as phone:
        datagram = notify_for(phone, udp)
        first = await exchange(phone, udp, datagram)
        second = await exchange(phone, udp, datagram)
        await wait_for(lambda: phone.report().polls == 1)

    assert first is not None and second is not None
    assert (first.status, second.status) == (200, 200)
    assert phone.check_syncs == 1


async def test_check_sync_with_reboot_true_reboots_the_phone(
    prov: ProvServer, spec: Spec, udp: socket.socket
) -> None:
    rest_files(prov)
    # 150 phone seconds offline: 1.5 s real.
    async with serving_phone(spec, source_ip="127.20.2.3", reboot_seconds=150.0) as phone:
        answer = await exchange(phone, udp, notify_for(phone, udp, reboot=True))
        await wait_for(lambda: not phone.online)
        offline_notify = notify_for(phone, udp, call_id="cs-2@test")
        silent = await exchange(phone, udp, offline_notify, NO_ANSWER_SECONDS)
        await wait_for(lambda: phone.online)

    assert answer is not None and answer.status == 200
    assert silent is None
    assert phone.restarts == 1
    assert phone.last_restart_reason == "check-sync"


async def test_always_reboot_parameter_turns_check_sync_into_a_reboot(
    prov: ProvServer, spec: Spec, udp: socket.socket
) -> None:
    rest_files(prov, voIpProt__SIP__specialEvent__checkSync__alwaysReboot="1")
    async with serving_phone(spec, source_ip="127.20.2.4", reboot_seconds=5.0) as phone:
        answer = await exchange(phone, udp, notify_for(phone, udp))
        await wait_for(lambda: phone.restarts == 1 and phone.online)

    assert answer is not None and answer.status == 200


async def test_soundpoint_without_rest_still_answers_check_sync(
    prov: ProvServer, spec: Spec, udp: socket.socket
) -> None:
    rest_files(prov)
    async with serving_phone(spec, model="SPIP650", source_ip="127.20.2.5") as phone:
        answer = await exchange(phone, udp, notify_for(phone, udp))
        await wait_for(lambda: phone.report().polls == 1)

    assert answer is not None and answer.status == 200


async def test_another_event_gets_489_bad_event(
    prov: ProvServer, spec: Spec, udp: socket.socket
) -> None:
    rest_files(prov)
    async with serving_phone(spec, source_ip="127.20.2.6") as phone:
        datagram = notify_for(phone, udp).replace(b"Event: check-sync", b"Event: dialog")
        answer = await exchange(phone, udp, datagram)

    assert answer is not None and answer.status == 489
    assert phone.check_syncs == 0


async def test_a_request_without_call_id_gets_400(
    prov: ProvServer, spec: Spec, udp: socket.socket
) -> None:
    rest_files(prov)
    async with serving_phone(spec, source_ip="127.20.2.7") as phone:
        datagram = notify_for(phone, udp).replace(b"Call-ID: cs-1@test\r\n", b"")
        answer = await exchange(phone, udp, datagram)

    assert answer is not None and answer.status == 400
    assert phone.check_syncs == 0


@pytest.mark.parametrize(
    "datagram",
    [b"\x00\x01garbage", b"NOTIFY sip:x SIP/2.0\r\n" + b"X: y\r\n" * 2000 + b"\r\n"],
    ids=["garbage", "over-8-kib"],
)
async def test_unparsable_datagrams_get_no_answer(
    prov: ProvServer, spec: Spec, udp: socket.socket, datagram: bytes
) -> None:
    rest_files(prov)
    async with serving_phone(spec, source_ip="127.20.2.8") as phone:
        answer = await exchange(phone, udp, datagram, NO_ANSWER_SECONDS)
        still = await exchange(phone, udp, notify_for(phone, udp))

    assert answer is None
    assert still is not None and still.status == 200
