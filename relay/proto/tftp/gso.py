"""A window of DATA packets packed for UDP generic segmentation offload (Linux 4.18 and later).

With the UDP_SEGMENT socket option set to `segment` bytes, one send of a buffer
is split by the kernel (or the NIC) into datagrams of `segment` bytes, the
last one possibly shorter: a window of 32 blocks (RFC 7440) costs one system
call instead of 32. The receiver sees ordinary datagrams. Pure stdlib
(relay.proto rules); the adapter (relay/frontend/tftp.py) sets the option.
"""

from __future__ import annotations

DATA_HEADER = 4  # a DATA packet's opcode and block number (RFC 1350 section 5)
MAX_SEGMENTS = 64  # UDP_MAX_SEGMENTS, include/linux/udp.h
MAX_BYTES = 65507  # the largest UDP payload of one IPv4 datagram (and under IPv6's)


def batches(datagrams: tuple[bytes, ...], segment: int) -> list[bytes]:
    """The sends that carry `datagrams` in order when each send is cut every `segment` bytes.

    Runs of datagrams of exactly `segment` bytes are joined, at most
    MAX_SEGMENTS and MAX_BYTES per send; a shorter datagram may end a run (the
    kernel allows a short last segment); a longer one goes alone.
    """
    per_send = max(1, min(MAX_SEGMENTS, MAX_BYTES // segment))
    out: list[bytes] = []
    run: list[bytes] = []
    for datagram in datagrams:
        if len(datagram) <= segment:
            run.append(datagram)
        if len(datagram) != segment or len(run) == per_send:
            if run:
                out.append(b"".join(run))
                run = []
            if len(datagram) > segment:
                out.append(datagram)
    if run:
        out.append(b"".join(run))
    return out


def split(buffer: bytes, segment: int) -> list[bytes]:
    """What the kernel makes of one send: `segment`-byte datagrams, the last maybe shorter."""
    return [buffer[i : i + segment] for i in range(0, len(buffer), segment)]
