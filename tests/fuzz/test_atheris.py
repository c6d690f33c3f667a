"""Each atheris target runs a bounded number of coverage-guided inputs without a crash.

RUNS keeps the twelve targets to about two minutes of the suite; run one for longer
by hand: `python tests/fuzz/atheris_targets.py images -runs=1000000`.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

HARNESS = Path(__file__).with_name("atheris_targets.py")
RUNS = 4_000
SEEDS = {
    "csv": [
        b"mac_address, endpoint_name, endpoint_group, reg.1.address\n"
        b'0004F23EA4E1, SoundPoint-EA4E1, EPGroup1|EPGroup2, "1000, ""x"""\n',
        b"site_name;subnets\nA;{}\n",
    ],
    "cfg": [
        b'<?xml version="1.0"?>\n<polycomConfig><device device.set="1" '
        b'device.prov.serverName="relay.example"/><reg reg.1.address="1001"/></polycomConfig>',
        b'<PHONE_CONFIG><ALL voIpProt.server.1.address="sip.example"/></PHONE_CONFIG>',
    ],
    "sip": [
        b"NOTIFY sip:127.20.0.5:5060 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKx\r\n"
        b"From: <sip:relay@127.0.0.1>;tag=1\r\nTo: <sip:127.20.0.5>\r\nCall-ID: a@b\r\n"
        b"CSeq: 1 NOTIFY\r\nEvent: check-sync\r\nContent-Length: 0\r\n\r\n",
    ],
    "ftp_names": [b"/0004f2a1b2c3-app.log", b"logs/../../etc/passwd", b"contacts"],
    "ztp": [
        b'{"version": 3, "devices": {"0004f2a1b2c3": {"url": "https://relay.example/",'
        b' "user": "phones", "password": "pw"}}}',
    ],
    "dhcp": [
        # A phone's DISCOVER (53=1, 55, option 60 with enterprise 13885) and a relayed
        # REQUEST with option 82: the 240-byte header, cookie, options, END.
        b"\x01\x01\x06\x00\x00\x00\x00\x07"
        + bytes(20)
        + bytes.fromhex("0004f2a1b2c3")
        + bytes(202)
        + b"\x63\x82\x53\x63\x35\x01\x01\x37\x04\x01\x03\x42\xa0"
        + b"\x3c\x08\x00\x00\x36\x3d\x03\x01\x01x\xff",
        b"\x01\x01\x06\x01\x00\x00\x00\x08"
        + bytes(16)
        + b"\x0a\x00\x00\x02"
        + bytes.fromhex("0004f2a1b2c4")
        + bytes(202)
        + b"\x63\x82\x53\x63\x35\x01\x03\x32\x04\x0a\x00\x00\x64"
        + b"\x36\x04\x0a\x00\x00\x01\x52\x04\x01\x02p1\xff",
    ],
    "agent_link": [
        b'{"jobs": [{"seq": 1, "task_id": "t", "type": "reboot", "options": {}, "device": '
        b'{"mac": "0004f2000001", "address": "127.20.0.1", "rest": true, "password": "p"}}]}',
        b'{"reports": [{"seq": 1, "kind": "status", "body": {"device": "0004f2000001", '
        b'"online": true, "checked": 1.0, '
        b'"lines": [{"number": 1, "registration": "registered"}]}}]}',
    ],
    "phone_answer": [
        b'{"Status": "2000", "data": {"UpTime": "12", "Firmware": "6.4.3"}}',
        b'{"Status": "4010"}',
    ],
    "tftp": [
        b"\x00\x01000000000000.cfg\x00octet\x00blksize\x0065536\x00tsize\x000\x00"
        b"windowsize\x008\x00timeout\x003\x00",
        b"\x00\x02../etc/passwd\x00netascii\x00",
        b"\x00\x04\xff\xff",
        b"\x00\x05\x00\x08refused\x00",
    ],
    "images": [
        b'{"format": 1, "images": [{"id": "a1b2c3d4e5f60718", "model": "VVX", "version": '
        b'"6.4.3", "filename": "sip.ld", "size": 10, "sha256": "' + b"0" * 64 + b'", "url": ""}]}',
        b"bytes 100-199/1000",
        b"images/a1b2c3d4e5f60718/3111-44500-001.sip.ld",
    ],
    "subnets": [
        b'{"public-subnet-list": [{"ip-address": "20.1.0.0", "mask-length": "16", '
        b'"private-subnet-list": [{"ip-address": "10.0.0.0", "mask-length": 8}]}]}',
    ],
}


@pytest.mark.parametrize("target", sorted(SEEDS))
def test_atheris_target_survives_bounded_fuzzing(target: str, tmp_path: Path) -> None:
    pytest.importorskip("atheris", reason="atheris not installed (pip install atheris)")
    for i, seed in enumerate(SEEDS[target]):
        (tmp_path / f"seed{i}").write_bytes(seed)
    result = subprocess.run(
        [
            sys.executable,
            str(HARNESS),
            target,
            f"-runs={RUNS}",
            "-max_len=4096",
            "-seed=1",
            "-max_total_time=60",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
        cwd=HARNESS.parents[2],
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"Done {RUNS} runs" in result.stderr
