"""SIP messages for check-sync (phones.md section 4): parse, build a NOTIFY, answer it.

Phones re-read their configuration on an out-of-dialog NOTIFY carrying
`Event: check-sync` (`;reboot=true` asks for a reboot). Both the management
agent (sending) and the phone simulator (receiving) use this module, so
parsing is strict and bounded: UDP datagrams come from anyone on the LAN.
Any bad input raises `SipError` and nothing else.

Pure stdlib (relay.proto rules): no sockets, no asyncio, no logging.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType

MAX_MESSAGE = 8192
MAX_HEADERS = 64
SIP_VERSION = "SIP/2.0"
# RFC 3261 section 8.1.1.7: every branch starts with this magic cookie.
BRANCH_COOKIE = "z9hG4bK"

# RFC 3261 section 7.3.3 compact forms, plus `e` (Event, RFC 6665) and `o`, `u`.
COMPACT_FORMS: Mapping[str, str] = MappingProxyType(
    {
        "v": "via",
        "f": "from",
        "t": "to",
        "i": "call-id",
        "m": "contact",
        "l": "content-length",
        "c": "content-type",
        "e": "content-encoding",
        "k": "supported",
        "s": "subject",
        "o": "event",
        "u": "allow-events",
    }
)

# RFC 3261 section 25.1 `token`: what method and header names are made of.
_TCHARS = r"[A-Za-z0-9\-.!%*_+`'~]+"
_TCHARS_RE = re.compile(_TCHARS)
_REQUEST_LINE_RE = re.compile(rf"({_TCHARS}) (\S+) SIP/2\.0")
_STATUS_LINE_RE = re.compile(r"SIP/2\.0 ([1-6][0-9]{2}) ([^\x00-\x08\x0a-\x1f\x7f]*)")
_HEADER_RE = re.compile(rf"({_TCHARS})[ \t]*:[ \t]*(.*)")
_LENGTH_RE = re.compile(r"[0-9]{1,5}")
_CSEQ_RE = re.compile(rf"([0-9]{{1,10}})[ \t]+({_TCHARS})")
_BAD_VALUE_RE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_LINE_BREAK_RE = re.compile(r"\r?\n")
_HOST_RE = re.compile(r"[A-Za-z0-9\-.:\[\]]+")
_WORD_RE = re.compile(r"[A-Za-z0-9\-.!%*_+`'~()<>:\\\"/\[\]?{}@]+")


class SipError(ValueError):
    """Input that is not a SIP message this module accepts (or cannot be built)."""


@dataclass(frozen=True, slots=True)
class SipMessage:
    """One request (`method` set) or response (`status` set), headers in arrival order.

    Header names keep their spelling; `header()` looks them up
    case-insensitively and understands compact forms (`v`, `f`, `t`, `i`, `l`, ...).
    """

    method: str | None
    status: int | None
    reason: str
    request_uri: str
    headers: tuple[tuple[str, str], ...]
    body: bytes

    @property
    def is_request(self) -> bool:
        return self.method is not None

    def header(self, name: str) -> str | None:
        """The first value of header `name`, or None."""
        values = self.header_values(name)
        return values[0] if values else None

    def header_values(self, name: str) -> tuple[str, ...]:
        """Every value of header `name` in order (a request may carry several Via)."""
        wanted = canonical_name(name)
        return tuple(value for key, value in self.headers if canonical_name(key) == wanted)


def canonical_name(name: str) -> str:
    """Lower-case long form of a header name: "i" -> "call-id", "Call-ID" -> "call-id"."""
    lowered = name.lower()
    return COMPACT_FORMS.get(lowered, lowered)


def parse_message(data: bytes) -> SipMessage:
    """Parse one datagram; at most 8 KiB and 64 headers, Content-Length must match the body."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise SipError("a SIP message is bytes")
    data = bytes(data)
    if len(data) > MAX_MESSAGE:
        raise SipError(f"message of {len(data)} bytes is over the {MAX_MESSAGE}-byte limit")
    head, body = _split(data)
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        raise SipError("the start line and headers are not UTF-8") from None
    lines = _LINE_BREAK_RE.split(text)
    method, status, reason, uri = _start_line(lines[0])
    headers = _headers(lines[1:])
    message = SipMessage(
        method=method,
        status=status,
        reason=reason,
        request_uri=uri,
        headers=headers,
        body=body,
    )
    _check_length(message)
    _check_cseq(message)
    return message


def parse_event(value: str) -> tuple[str, Mapping[str, str]]:
    """An Event header: "check-sync;reboot=true" -> ("check-sync", {"reboot": "true"}).

    The package name is lower-cased (RFC 6665 event packages compare case-insensitively);
    parameter names are lower-cased, values kept.
    """
    package, *raw_params = (part.strip() for part in value.split(";"))
    if _TCHARS_RE.fullmatch(package) is None:
        raise SipError(f"Event {value!r} does not start with an event package name")
    params: dict[str, str] = {}
    for raw in raw_params:
        name, _, param_value = raw.partition("=")
        name = name.strip().lower()
        if _TCHARS_RE.fullmatch(name) is None:
            raise SipError(f"Event {value!r} has a malformed parameter {raw!r}")
        params[name] = param_value.strip().strip('"')
    return package.lower(), MappingProxyType(params)


def check_sync_notify(
    *,
    target_host: str,
    target_port: int,
    local_host: str,
    local_port: int,
    call_id: str,
    branch: str,
    from_tag: str,
    cseq: int = 1,
    reboot: bool = False,
) -> bytes:
    """An out-of-dialog NOTIFY telling the phone at target to check its configuration.

    `branch` gets the RFC 3261 magic cookie prepended unless it has it already.
    Raises SipError for values that cannot go into a header (spaces, line breaks).
    """
    target = _host_port(target_host, target_port)
    local = _host_port(local_host, local_port)
    for label, word in (("call_id", call_id), ("branch", branch), ("from_tag", from_tag)):
        if _WORD_RE.fullmatch(word) is None:
            raise SipError(f"{label} {word!r} cannot go into a SIP header")
    if not 0 < cseq < 2**31:
        raise SipError(f"CSeq {cseq} is outside 1..2**31-1")
    if not branch.startswith(BRANCH_COOKIE):
        branch = BRANCH_COOKIE + branch
    event = "check-sync;reboot=true" if reboot else "check-sync"
    lines = [
        f"NOTIFY sip:{target} {SIP_VERSION}",
        f"Via: {SIP_VERSION}/UDP {local};branch={branch};rport",
        "Max-Forwards: 70",
        f"From: <sip:{local}>;tag={from_tag}",
        f"To: <sip:{target}>",
        f"Call-ID: {call_id}",
        f"CSeq: {cseq} NOTIFY",
        f"Contact: <sip:{local}>",
        f"Event: {event}",
        "Subscription-State: terminated",
        "Content-Length: 0",
    ]
    return _assemble(lines)


def response_for(
    request: SipMessage,
    status: int,
    reason: str,
    to_tag: str,
    *,
    extra_headers: Sequence[tuple[str, str]] = (),
) -> bytes:
    """The response to `request` (RFC 3261 section 8.2.6): Via, From, To (+tag), Call-ID, CSeq.

    The To tag is added only if the request's To has none (an in-dialog request keeps its tag).
    """
    if request.method is None:
        raise SipError("only a request can be answered")
    if not 100 <= status <= 699:
        raise SipError(f"status {status} is outside 100..699")
    if _BAD_VALUE_RE.search(reason) or _WORD_RE.fullmatch(to_tag) is None:
        raise SipError("reason and To tag cannot contain line breaks or spaces")
    lines = [f"{SIP_VERSION} {status} {reason}"]
    lines += [f"Via: {via}" for via in request.header_values("via")]
    for name in ("From", "To", "Call-ID", "CSeq"):
        value = request.header(name)
        if value is None:
            continue
        if name == "To" and not _has_tag(value):
            value = f"{value};tag={to_tag}"
        lines.append(f"{name}: {value}")
    for name, value in extra_headers:
        if _TCHARS_RE.fullmatch(name) is None or _BAD_VALUE_RE.search(value):
            raise SipError(f"header {name!r} cannot be sent")
        lines.append(f"{name}: {value}")
    lines.append("Content-Length: 0")
    return _assemble(lines)


def _split(data: bytes) -> tuple[bytes, bytes]:
    """Head and body at the first empty line (CRLF, or bare LF from lenient senders)."""
    match = re.search(rb"\r?\n\r?\n", data)
    if match is None:
        raise SipError("no empty line ends the headers")
    return data[: match.start()], data[match.end() :]


def _start_line(line: str) -> tuple[str | None, int | None, str, str]:
    request = _REQUEST_LINE_RE.fullmatch(line)
    if request is not None:
        return request[1].upper(), None, "", request[2]
    response = _STATUS_LINE_RE.fullmatch(line)
    if response is not None:
        return None, int(response[1]), response[2], ""
    raise SipError(f"start line {line[:80]!r} is neither a SIP/2.0 request nor a response")


def _headers(lines: Sequence[str]) -> tuple[tuple[str, str], ...]:
    headers: list[list[str]] = []
    for line in lines:
        if line[:1] in (" ", "\t"):
            if not headers:
                raise SipError("a continuation line comes before any header")
            headers[-1][1] = f"{headers[-1][1]} {line.strip()}"
            continue
        match = _HEADER_RE.fullmatch(line)
        if match is None:
            raise SipError(f"header line {line[:80]!r} is not `name: value`")
        headers.append([match[1], match[2].strip()])
        if len(headers) > MAX_HEADERS:
            raise SipError(f"more than {MAX_HEADERS} headers")
    for name, value in headers:
        if _BAD_VALUE_RE.search(value):
            raise SipError(f"header {name!r} carries control characters")
    return tuple((name, value) for name, value in headers)


def _check_length(message: SipMessage) -> None:
    lengths = message.header_values("content-length")
    if not lengths:
        return
    if len(lengths) > 1:
        raise SipError("more than one Content-Length")
    if _LENGTH_RE.fullmatch(lengths[0]) is None:
        raise SipError(f"Content-Length {lengths[0][:20]!r} is not a number")
    if int(lengths[0]) != len(message.body):
        raise SipError(
            f"Content-Length {int(lengths[0])} does not match the {len(message.body)}-byte body"
        )


def _check_cseq(message: SipMessage) -> None:
    """A CSeq, when present, is a number and a method; in a request, the request's method."""
    cseq = message.header("cseq")
    if cseq is None:
        return
    match = _CSEQ_RE.fullmatch(cseq)
    if match is None or int(match[1]) >= 2**31:
        raise SipError(f"CSeq {cseq[:40]!r} is not `number METHOD`")
    if message.method is not None and match[2].upper() != message.method:
        raise SipError(f"CSeq method {match[2]!r} differs from the request's {message.method!r}")


def _has_tag(value: str) -> bool:
    """Whether a From/To value carries a tag parameter (outside the <...> URI)."""
    params = value.rsplit(">", 1)[1] if ">" in value else value
    return re.search(r";\s*tag\s*=", params, re.IGNORECASE) is not None


def _host_port(host: str, port: int) -> str:
    if not host or _HOST_RE.fullmatch(host) is None:
        raise SipError(f"host {host!r} cannot go into a SIP URI")
    if not 0 < port < 65536:
        raise SipError(f"port {port} is outside 1..65535")
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"{host}:{port}"


def _assemble(lines: Sequence[str]) -> bytes:
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8")
