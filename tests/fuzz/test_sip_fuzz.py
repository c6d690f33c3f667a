"""SIP parsing never crashes on hostile datagrams: SipError or a message, in bounded time.

The simulator's answer function is fuzzed too: whatever arrives, it returns a
reply or nothing and never raises.
"""

from __future__ import annotations

import time
from collections import OrderedDict

from hypothesis import given, settings
from hypothesis import strategies as st

from relay.proto.sip.message import SipError, SipMessage, check_sync_notify, parse_message
from relay.sim.sip import answer_datagram

FUZZ = settings(max_examples=400, deadline=None)
SECONDS_PER_MESSAGE = 0.5
VALID = check_sync_notify(
    target_host="127.20.0.5",
    target_port=5060,
    local_host="127.0.0.1",
    local_port=5070,
    call_id="fuzz@relay",
    branch="z9hG4bKfuzz",
    from_tag="f1",
)

mutated = st.tuples(st.integers(0, len(VALID)), st.integers(0, 40), st.binary(max_size=64)).map(
    lambda cut: VALID[: cut[0]] + cut[2] + VALID[cut[0] + cut[1] :]
)
sip_ish = st.lists(
    st.sampled_from(
        [
            b"NOTIFY ",
            b"sip:a ",
            b"SIP/2.0",
            b"\r\n",
            b"\n",
            b": ",
            b"Via",
            b"l",
            b"CSeq: 1 ",
            b"Content-Length: ",
            b"0",
            b"9",
            b" ",
            b"\t",
            b"Event: check-sync;reboot=true",
            b"\xff",
        ]
    ),
    max_size=80,
).map(b"".join)
datagrams = st.one_of(st.binary(max_size=10_000), mutated, sip_ish)


def parse_or_error(data: bytes) -> SipMessage | None:
    started = time.monotonic()
    try:
        message = parse_message(data)
    except SipError:
        message = None
    assert time.monotonic() - started < SECONDS_PER_MESSAGE
    return message


@FUZZ
@given(datagrams)
def test_any_bytes_parse_to_a_message_or_sip_error(data: bytes) -> None:
    message = parse_or_error(data)

    if message is not None:
        assert (message.method is None) != (message.status is None)
        assert len(message.headers) <= 64


@FUZZ
@given(datagrams)
def test_the_simulators_answer_never_raises(data: bytes) -> None:
    reply, _check_sync = answer_datagram(data, OrderedDict())

    if reply is not None:
        assert parse_message(reply).status is not None
