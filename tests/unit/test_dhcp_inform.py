"""relay.proto.dhcp.inform: answer phones' DHCPINFORM only, never allocate (phones.md 1.4)."""

from __future__ import annotations

from ipaddress import IPv4Address

from relay.proto.dhcp.inform import InformResponder, is_phone
from relay.proto.dhcp.options import BootOptions
from relay.proto.dhcp.packet import (
    BOOTREQUEST,
    DhcpPacket,
    MessageType,
    Option,
    build,
    parse,
)

SERVER = IPv4Address("192.168.10.5")
CLIENT = IPv4Address("192.168.10.77")
RELAY = IPv4Address("192.168.20.1")
PHONE = "0004f2a1b2c3"
TRIO = "64167f0a0b0c"
LAPTOP = "3c22fb000001"
# phones.md section 1.3: enterprise 13885 (00 00 36 3d), a length, then sub-options.
POLYCOM_CLASS = b"\x00\x00\x36\x3d\x0b\x01\x09VVX500-A1"
BOOT = BootOptions(
    option66="relay.example",
    option160="https://PlcmSpIp:pw@relay.example/prov",
    vlan_id=30,
    vlan_options=(128,),
)
RESPONDER = InformResponder(SERVER, BOOT)


def client(
    kind: MessageType = MessageType.INFORM,
    mac: str = PHONE,
    *,
    prl: bytes = bytes((66, 160, 128)),
    extra: tuple[tuple[int, bytes], ...] = (),
    **fields: object,
) -> DhcpPacket:
    fields.setdefault("ciaddr", CLIENT)
    options = ((Option.MESSAGE_TYPE, bytes((kind,))), (Option.PARAMETER_REQUEST_LIST, prl), *extra)
    packet = DhcpPacket(
        op=BOOTREQUEST,
        xid=99,
        chaddr=bytes.fromhex(mac),
        options=options,
        **fields,  # type: ignore[arg-type]
    )
    return parse(build(packet))


def test_an_inform_from_a_phone_oui_gets_the_boot_options() -> None:
    reply = RESPONDER.handle(client())

    assert reply is not None
    ack = parse(build(reply.packet))
    assert ack.message_type == MessageType.ACK
    assert ack.server_id == SERVER
    assert ack.option(66) == b"relay.example"
    assert ack.option(160) == b"https://PlcmSpIp:pw@relay.example/prov"
    assert ack.option(128) == b"VLAN-A=30;"


def test_the_answer_allocates_nothing() -> None:
    reply = RESPONDER.handle(client())

    assert reply is not None
    assert reply.packet.yiaddr == IPv4Address(0)
    assert reply.packet.option(Option.LEASE_TIME) is None
    assert reply.packet.ciaddr == CLIENT


def test_the_answer_is_unicast_to_the_clients_address() -> None:
    reply = RESPONDER.handle(client())

    assert reply is not None
    assert (reply.ip, reply.port, reply.link_unicast) == (CLIENT, 68, False)


def test_a_relayed_inform_is_answered_through_the_relay() -> None:
    reply = RESPONDER.handle(client(giaddr=RELAY))

    assert reply is not None
    assert (reply.ip, reply.port) == (RELAY, 67)


def test_only_the_asked_for_options_are_answered() -> None:
    reply = RESPONDER.handle(client(prl=bytes((66,))))

    assert reply is not None
    assert [code for code, _ in reply.packet.options] == [53, 54, 66]


def test_the_second_polycom_oui_is_a_phone() -> None:
    assert RESPONDER.handle(client(mac=TRIO)) is not None


def test_a_phone_is_recognised_by_option_60_with_enterprise_13885() -> None:
    packet = client(mac=LAPTOP, extra=((Option.VENDOR_CLASS, POLYCOM_CLASS),))

    assert is_phone(packet)
    assert RESPONDER.handle(packet) is not None


def test_a_phone_is_recognised_by_option_125_with_enterprise_13885() -> None:
    packet = client(mac=LAPTOP, extra=((Option.VI_VENDOR_INFO, b"\x00\x00\x36\x3d\x03\x01\x01x"),))

    assert RESPONDER.handle(packet) is not None


def test_an_inform_from_another_host_is_ignored() -> None:
    assert RESPONDER.handle(client(mac=LAPTOP)) is None


def test_another_vendors_enterprise_number_is_not_a_phone() -> None:
    cisco = b"\x00\x00\x00\x09\x03\x01\x01x"

    assert RESPONDER.handle(client(mac=LAPTOP, extra=((60, cisco), (125, cisco)))) is None


def test_a_plain_text_vendor_class_is_not_a_phone() -> None:
    assert RESPONDER.handle(client(mac=LAPTOP, extra=((60, b"MSFT 5.0"),))) is None


def test_a_discover_from_a_phone_is_ignored() -> None:
    assert RESPONDER.handle(client(MessageType.DISCOVER, ciaddr=IPv4Address(0))) is None


def test_a_request_from_a_phone_is_ignored() -> None:
    assert RESPONDER.handle(client(MessageType.REQUEST)) is None


def test_option_82_is_echoed_in_the_answer() -> None:
    reply = RESPONDER.handle(client(giaddr=RELAY, extra=((82, b"\x01\x02p1"),)))

    assert reply is not None
    assert reply.packet.relay_agent_info == b"\x01\x02p1"


def test_custom_ouis_replace_the_polycom_ones() -> None:
    responder = InformResponder(SERVER, BOOT, ouis=("3c22fb",))

    assert responder.handle(client(mac=LAPTOP)) is not None
    assert responder.handle(client(mac=PHONE)) is None
