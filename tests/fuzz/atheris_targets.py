"""Coverage-guided fuzz targets (atheris): any bytes in, only the parser's own error out.

Run one by hand for longer: `python tests/fuzz/atheris_targets.py csv -runs=1000000`.
The test suite runs each for a bounded number of inputs (test_atheris.py).
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Callable
from ipaddress import IPv4Address, IPv4Network

import atheris

with atheris.instrument_imports():
    from download_agent.ranges import RangeError, parse_content_range
    from management_agent.phone_client import PhoneError, rest_data
    from relay.cloud.rules.errors import RuleError
    from relay.cloud.rules.sites_csv import parse_subnets_json
    from relay.cloud.rules.ztp import parse_directory
    from relay.frontend.firmware import resolve as resolve_image
    from relay.frontend.ftp_rules import WriteRefused, change_directory, resolve, upload
    from relay.proto.csv.table import CsvError, read_table
    from relay.proto.dhcp.inform import InformResponder
    from relay.proto.dhcp.leases import LeaseConfig, LeaseTable, Pool
    from relay.proto.dhcp.options import BootOptions
    from relay.proto.dhcp.packet import DhcpError, build, parse
    from relay.proto.polycom.cfgfile import ConfigFileError, parse_config
    from relay.proto.polycom.paths import PathRejected
    from relay.proto.sip.message import SipError, parse_message
    from relay.proto.tftp.names import screen
    from relay.proto.tftp.packet import Request, TftpError, parse_packet
    from relay.proto.tftp.session import BytesSource, ReadSession, SessionConfig
    from relay.sync.images import parse_index
    from relay.sync.messages import JobBatch, ReportBatch, SyncError


def fuzz_csv(data: bytes) -> None:
    with contextlib.suppress(CsvError):
        read_table(data, max_rows=500, max_bytes=64 * 1024)


def fuzz_cfg(data: bytes) -> None:
    with contextlib.suppress(ConfigFileError):
        parse_config(data, max_bytes=64 * 1024)


def fuzz_subnets(data: bytes) -> None:
    with contextlib.suppress(RuleError):
        parse_subnets_json(data.decode("utf-8", "replace"))


def fuzz_sip(data: bytes) -> None:
    with contextlib.suppress(SipError):
        parse_message(data)


_DHCP_BOOT = BootOptions(option66="relay.example", vlan_id=10, vlan_options=(128,))
_DHCP_CONFIG = LeaseConfig(
    IPv4Address("10.0.0.1"),
    (
        Pool(
            IPv4Network("10.0.0.0/24"),
            IPv4Address("10.0.0.100"),
            IPv4Address("10.0.0.103"),
            boot=_DHCP_BOOT,
        ),
    ),
)
_DHCP_TABLE = LeaseTable(_DHCP_CONFIG)
_DHCP_INFORM = InformResponder(IPv4Address("10.0.0.1"), _DHCP_BOOT)
_DHCP_CLOCK = [1_700_000_000.0]


def fuzz_dhcp(data: bytes) -> None:
    """Parse, then serve the packet: one table across runs, so state builds up as in a flood."""
    _DHCP_CLOCK[0] += 1
    with contextlib.suppress(DhcpError):
        packet = parse(data)
        for reply in (
            _DHCP_TABLE.handle(packet, _DHCP_CLOCK[0]).reply,
            _DHCP_INFORM.handle(packet),
        ):
            if reply is not None:
                build(reply.packet)


def fuzz_agent_link(data: bytes) -> None:
    try:
        value = json.loads(data)
    except (ValueError, RecursionError):
        return
    for message in (JobBatch, ReportBatch):
        with contextlib.suppress(SyncError):
            message.from_wire(value)


def fuzz_phone_answer(data: bytes) -> None:
    with contextlib.suppress(PhoneError):
        rest_data(200, data)


def fuzz_tftp(data: bytes) -> None:
    """A datagram as a request (screened, then a session started) and as a client packet."""
    with contextlib.suppress(TftpError):
        packet = parse_packet(data)
        if isinstance(packet, Request):
            screen(packet)
            session = ReadSession(packet, BytesSource(bytes(3000)), SessionConfig())
            session.start(0.0)
            session.on_datagram(data, 1.0)
            session.on_timer(5.0)


def fuzz_ztp(data: bytes) -> None:
    """The relay's ZTP directory, as the cloud sends it or as it was saved on disk."""
    try:
        value = json.loads(data)
    except (ValueError, RecursionError):
        return
    with contextlib.suppress(RuleError):
        parse_directory(value)


def fuzz_ftp_names(data: bytes) -> None:
    """An FTP command's argument as a file name, a write and a working directory."""
    text = data.decode("utf-8", "replace")
    with contextlib.suppress(PathRejected, WriteRefused):
        upload(resolve("/", text).names, append=text.endswith(".log"))
    with contextlib.suppress(PathRejected):
        change_directory("/", text)


def fuzz_images(data: bytes) -> None:
    """The download agent's index file, a 206's Content-Range, and a phone's image name
    against what the index lists (issue 6)."""
    published = ()
    with contextlib.suppress(SyncError):
        published = parse_index(data)
    text = data.decode("utf-8", "replace")
    with contextlib.suppress(RangeError):
        parse_content_range(text)
    resolve_image(published, text)


TARGETS: dict[str, Callable[[bytes], None]] = {
    "csv": fuzz_csv,
    "cfg": fuzz_cfg,
    "subnets": fuzz_subnets,
    "sip": fuzz_sip,
    "dhcp": fuzz_dhcp,
    "agent_link": fuzz_agent_link,
    "phone_answer": fuzz_phone_answer,
    "tftp": fuzz_tftp,
    "ztp": fuzz_ztp,
    "ftp_names": fuzz_ftp_names,
    "images": fuzz_images,
}

if __name__ == "__main__":
    target = TARGETS[sys.argv[1]]
    atheris.Setup([sys.argv[0], *sys.argv[2:]], target)
    atheris.Fuzz()
