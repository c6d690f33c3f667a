"""The agent link's messages (relay/sync/messages.py) under random input: every
`from_wire` raises only SyncError, and what `to_wire` writes reads back equal
after a trip through JSON (docs/agent-link.md)."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from relay.sync import messages as m

FUZZ = settings(max_examples=100, deadline=None)
ROUND_TRIPS = settings(max_examples=300, deadline=None)

PARSERS: dict[str, Callable[[object], object]] = {
    cls.__name__: cls.from_wire
    for cls in (
        m.Registration,
        m.Credential,
        m.Heartbeat,
        m.LinkSettings,
        m.Target,
        m.Job,
        m.JobBatch,
        m.JobResult,
        m.Line,
        m.Call,
        m.DeviceStatus,
        m.Report,
        m.ReportBatch,
        m.Watchlist,
    )
}
KEYS = [
    "tenant", "pin", "name", "version", "addresses", "relay_id", "secret",
    "heartbeat_seconds", "uptime", "download_agent", "download_agent_version", "site",
    "monitor_seconds", "mac", "address", "model", "firmware", "rest", "password", "seq",
    "task_id", "type", "options", "device", "jobs", "job", "result", "reason", "data",
    "number", "registration", "state", "duration", "online", "checked", "lines", "calls",
    "last_restart", "kind", "body", "reports", "devices", "scope", "parameters", "dest",
    "line", "dial_type", "reboot",
]  # fmt: skip
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.sampled_from(["0004f2000001", "10.0.0.1", "::1", "running", "status", "result", "VVX"]),
    st.sampled_from([*m.TASK_TYPES, *m.RESULTS, *m.RESET_SCOPES, "registered"]),
)
JSONISH = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=5), inner, max_size=8),
    ),
    max_leaves=40,
)


@pytest.mark.parametrize("name", sorted(PARSERS))
@FUZZ
@given(value=JSONISH)
def test_from_wire_raises_only_sync_error(name: str, value: Any) -> None:
    with contextlib.suppress(m.SyncError):
        PARSERS[name](value)


@FUZZ
@given(task_type=st.text(max_size=15) | st.sampled_from(m.TASK_TYPES), options=JSONISH)
def test_check_options_raises_only_sync_error(task_type: str, options: Any) -> None:
    with contextlib.suppress(m.SyncError):
        m.check_options(task_type, options)


text = st.text(max_size=30)
macs = st.from_regex(r"[0-9a-f]{12}", fullmatch=True)
ips = st.ip_addresses().map(str)
seconds = st.floats(min_value=0, max_value=1e10, allow_nan=False)
seqs = st.integers(min_value=0, max_value=2**63 - 1)
lines = st.builds(
    m.Line,
    number=st.integers(1, m.MAX_LINES),
    registration=st.sampled_from(["registered", "unregistered"]),
    sip_address=text,
    user_id=text,
    proxy=text,
)
calls = st.builds(m.Call, state=text, remote_name=text, remote_number=text, duration=seconds)
statuses = st.builds(
    m.DeviceStatus,
    device=macs,
    online=st.booleans(),
    checked=seconds,
    reason=text,
    lines=st.lists(lines, max_size=3).map(tuple),
    calls=st.lists(calls, max_size=2).map(tuple),
    uptime=st.none() | seconds,
    last_restart=st.none() | seconds,
    firmware=text,
)
results = st.builds(
    m.JobResult,
    job=seqs,
    task_id=text,
    device=macs,
    result=st.sampled_from(m.RESULTS),
    reason=text,
    data=st.dictionaries(text, text | st.integers(), max_size=3),
)
targets = st.builds(
    m.Target,
    mac=macs,
    address=ips,
    model=text,
    firmware=text,
    rest=st.booleans(),
    password=text,
)
jobs = st.builds(
    m.Job,
    seq=seqs,
    task_id=text,
    type=st.just("reset"),
    options=st.sampled_from(m.RESET_SCOPES).map(lambda s: {"scope": s}),
    device=targets,
)


@st.composite
def report_batches(draw: st.DrawFn) -> m.ReportBatch:
    numbers = sorted(draw(st.sets(seqs, max_size=4)))
    reports = [
        m.Report(n, result=draw(results))
        if draw(st.booleans())
        else m.Report(n, status=draw(statuses))
        for n in numbers
    ]
    return m.ReportBatch(tuple(reports))


@st.composite
def job_batches(draw: st.DrawFn) -> m.JobBatch:
    numbers = sorted(draw(st.sets(seqs, max_size=3)))
    return m.JobBatch(tuple(draw(jobs.map(lambda j, n=n: _renumber(j, n))) for n in numbers))


def _renumber(job: m.Job, seq: int) -> m.Job:
    return m.Job(seq, job.task_id, job.type, job.options, job.device)


MESSAGES = st.one_of(
    st.builds(
        m.Registration,
        tenant=text,
        pin=text,
        name=text,
        version=text,
        addresses=st.lists(ips, max_size=3).map(tuple),
    ),
    st.builds(
        m.Credential,
        relay_id=text,
        secret=text,
        heartbeat_seconds=st.floats(min_value=1, max_value=1e6),
    ),
    st.builds(
        m.Heartbeat,
        version=text,
        addresses=st.lists(ips, max_size=3).map(tuple),
        uptime=seconds,
        download_agent=st.sampled_from(m.DOWNLOAD_AGENT_STATES),
        download_agent_version=text,
    ),
    st.builds(
        m.LinkSettings,
        relay_id=text,
        site=st.none() | text,
        heartbeat_seconds=st.floats(min_value=1, max_value=1e6),
        monitor_seconds=st.floats(min_value=1, max_value=1e6),
    ),
    statuses,
    results,
    report_batches(),
    job_batches(),
    st.builds(
        m.Watchlist,
        devices=st.lists(targets, max_size=3).map(tuple),
        monitor_seconds=st.floats(min_value=1, max_value=1e6),
    ),
)


@ROUND_TRIPS
@given(message=MESSAGES)
def test_to_wire_reads_back_equal_through_json(message: Any) -> None:
    wire = json.loads(json.dumps(message.to_wire()))
    assert type(message).from_wire(wire) == message
