"""Coverage-guided fuzz targets (atheris): any bytes in, only the parser's own error out.

Run one by hand for longer: `python tests/fuzz/atheris_targets.py csv -runs=1000000`.
The test suite runs each for a bounded number of inputs (test_atheris.py).
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Callable

import atheris

with atheris.instrument_imports():
    from management_agent.phone_client import PhoneError, rest_data
    from relay.cloud.rules.errors import RuleError
    from relay.cloud.rules.sites_csv import parse_subnets_json
    from relay.proto.csv.table import CsvError, read_table
    from relay.proto.polycom.cfgfile import ConfigFileError, parse_config
    from relay.proto.sip.message import SipError, parse_message
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


TARGETS: dict[str, Callable[[bytes], None]] = {
    "csv": fuzz_csv,
    "cfg": fuzz_cfg,
    "subnets": fuzz_subnets,
    "sip": fuzz_sip,
    "agent_link": fuzz_agent_link,
    "phone_answer": fuzz_phone_answer,
}

if __name__ == "__main__":
    target = TARGETS[sys.argv[1]]
    atheris.Setup([sys.argv[0], *sys.argv[2:]], target)
    atheris.Fuzz()
