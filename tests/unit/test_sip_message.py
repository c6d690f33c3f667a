"""relay.proto.sip.message: check-sync NOTIFY built, parsed and answered (RFC 3261)."""

from __future__ import annotations

import pytest

from relay.proto.sip.message import (
    MAX_HEADERS,
    MAX_MESSAGE,
    SipError,
    check_sync_notify,
    parse_event,
    parse_message,
    response_for,
)


def notify(**changes: object) -> bytes:
    fields: dict[str, object] = {
        "target_host": "127.20.0.5",
        "target_port": 5060,
        "local_host": "127.0.0.1",
        "local_port": 5070,
        "call_id": "abc123@relay",
        "branch": "z9hG4bK776asdhds",
        "from_tag": "1928301774",
    }
    fields.update(changes)
    return check_sync_notify(**fields)  # type: ignore[arg-type]


def test_check_sync_notify_parses_back_with_every_required_header() -> None:
    message = parse_message(notify(cseq=7))

    assert message.method == "NOTIFY"
    assert message.status is None
    assert message.request_uri == "sip:127.20.0.5:5060"
    assert message.header("Via") == "SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK776asdhds;rport"
    assert message.header("From") == "<sip:127.0.0.1:5070>;tag=1928301774"
    assert message.header("To") == "<sip:127.20.0.5:5060>"
    assert message.header("Call-ID") == "abc123@relay"
    assert message.header("CSeq") == "7 NOTIFY"
    assert message.header("Max-Forwards") == "70"
    assert message.header("Contact") == "<sip:127.0.0.1:5070>"
    assert message.header("Event") == "check-sync"
    assert message.header("Content-Length") == "0"
    assert message.body == b""


def test_reboot_flag_goes_into_the_event_header() -> None:
    message = parse_message(notify(reboot=True))

    package, params = parse_event(message.header("event") or "")
    assert (package, dict(params)) == ("check-sync", {"reboot": "true"})


def test_branch_without_the_magic_cookie_gets_it() -> None:
    message = parse_message(notify(branch="abc"))

    assert "branch=z9hG4bKabc;" in (message.header("via") or "")


def test_header_lookup_is_case_insensitive_and_understands_compact_forms() -> None:
    raw = (
        b"NOTIFY sip:a@b SIP/2.0\r\nv: SIP/2.0/UDP h;branch=z9hG4bK1\r\nf: <sip:x>;tag=1\r\n"
        b"t: <sip:y>\r\ni: id1\r\nCSEQ: 1 NOTIFY\r\no: check-sync\r\nl: 2\r\n\r\nhi"
    )
    message = parse_message(raw)

    assert message.header("Via") == "SIP/2.0/UDP h;branch=z9hG4bK1"
    assert message.header("from") == "<sip:x>;tag=1"
    assert message.header("TO") == "<sip:y>"
    assert message.header("call-id") == "id1"
    assert message.header("cseq") == "1 NOTIFY"
    assert message.header("Event") == "check-sync"
    assert message.header("Content-Length") == "2"
    assert message.body == b"hi"


def test_bare_line_feeds_and_folded_headers_are_accepted() -> None:
    raw = b"OPTIONS sip:a SIP/2.0\nVia: SIP/2.0/UDP h\n ;branch=z9hG4bK2\nCSeq: 3 OPTIONS\n\n"
    message = parse_message(raw)

    assert message.header("via") == "SIP/2.0/UDP h ;branch=z9hG4bK2"


def test_response_status_line_is_parsed() -> None:
    message = parse_message(b"SIP/2.0 489 Bad Event\r\nCSeq: 1 NOTIFY\r\n\r\n")

    assert (message.method, message.status, message.reason) == (None, 489, "Bad Event")


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"NOTIFY sip:a SIP/2.0\r\n",
        b"NOTIFY sip:a SIP/3.0\r\n\r\n",
        b"SIP/2.0 99 Too Low\r\n\r\n",
        b"NOTIFY sip:a SIP/2.0\r\nno colon here\r\n\r\n",
        b"NOTIFY sip:a SIP/2.0\r\nContent-Length: 5\r\n\r\nabc",
        b"NOTIFY sip:a SIP/2.0\r\nContent-Length: x\r\n\r\n",
        b"NOTIFY sip:a SIP/2.0\r\nl: 0\r\nContent-Length: 0\r\n\r\n",
        b"NOTIFY sip:a SIP/2.0\r\nCSeq: 1 INVITE\r\n\r\n",
        b"NOTIFY sip:a SIP/2.0\r\nCSeq: one NOTIFY\r\n\r\n",
        b"NOTIFY sip:a SIP/2.0\r\nX: a\x00b\r\n\r\n",
        b"NOTIFY sip:\xff SIP/2.0\r\n\r\n",
        b" continuation\r\n\r\n",
    ],
    ids=[
        "empty",
        "no-end-of-headers",
        "wrong-version",
        "status-below-100",
        "header-without-colon",
        "content-length-too-big",
        "content-length-not-a-number",
        "two-content-lengths",
        "cseq-method-mismatch",
        "cseq-not-a-number",
        "nul-in-value",
        "not-utf8",
        "starts-with-continuation",
    ],
)
def test_malformed_messages_raise_sip_error(raw: bytes) -> None:
    with pytest.raises(SipError):
        parse_message(raw)


def test_messages_over_8_kib_are_refused() -> None:
    raw = notify()[:-4] + b"\r\nX-Pad: " + b"a" * MAX_MESSAGE + b"\r\n\r\n"

    with pytest.raises(SipError, match="limit"):
        parse_message(raw)


def test_more_than_64_headers_are_refused() -> None:
    raw = b"NOTIFY sip:a SIP/2.0\r\n" + b"X: 1\r\n" * (MAX_HEADERS + 1) + b"\r\n"

    with pytest.raises(SipError, match="headers"):
        parse_message(raw)


def test_response_copies_via_from_to_call_id_and_cseq_and_tags_to() -> None:
    request = parse_message(
        b"NOTIFY sip:a SIP/2.0\r\nVia: SIP/2.0/UDP p1;branch=z9hG4bK1\r\n"
        b"Via: SIP/2.0/UDP p2;branch=z9hG4bK2\r\nFrom: <sip:r>;tag=9\r\nTo: <sip:a>\r\n"
        b"Call-ID: c1\r\nCSeq: 4 NOTIFY\r\nEvent: check-sync\r\nContent-Length: 0\r\n\r\n"
    )
    response = parse_message(response_for(request, 200, "OK", "t55"))

    assert (response.status, response.reason) == (200, "OK")
    assert response.header_values("via") == (
        "SIP/2.0/UDP p1;branch=z9hG4bK1",
        "SIP/2.0/UDP p2;branch=z9hG4bK2",
    )
    assert response.header("From") == "<sip:r>;tag=9"
    assert response.header("To") == "<sip:a>;tag=t55"
    assert response.header("Call-ID") == "c1"
    assert response.header("CSeq") == "4 NOTIFY"
    assert response.header("Content-Length") == "0"


def test_response_keeps_an_existing_to_tag() -> None:
    request = parse_message(notify()[:-4].replace(b"5060>", b"5060>;tag=old") + b"\r\n\r\n")

    response = parse_message(response_for(request, 200, "OK", "new"))

    assert response.header("To") == "<sip:127.20.0.5:5060>;tag=old"


def test_only_requests_are_answered() -> None:
    response = parse_message(b"SIP/2.0 200 OK\r\nCSeq: 1 NOTIFY\r\n\r\n")

    with pytest.raises(SipError):
        response_for(response, 200, "OK", "t")


@pytest.mark.parametrize(
    "changes",
    [
        {"call_id": "a\r\nEvent: x"},
        {"from_tag": "has space"},
        {"target_host": "bad host"},
        {"target_port": 0},
        {"cseq": 0},
    ],
    ids=["crlf-in-call-id", "space-in-tag", "space-in-host", "port-0", "cseq-0"],
)
def test_notify_refuses_values_that_would_break_the_message(changes: dict[str, object]) -> None:
    with pytest.raises(SipError):
        notify(**changes)


def test_ipv6_hosts_are_bracketed() -> None:
    message = parse_message(notify(target_host="::1"))

    assert message.request_uri == "sip:[::1]:5060"
