"""Overload triage: which received datagrams are decided now, which wait, which are shed.

A phone fleet booting after a power cut sends DISCOVERs faster than the
server decides them. Deciding them in arrival order collapses under such a
flood: every DISCOVER answered puts a REQUEST behind the next DISCOVERs, the
REQUEST waits past the client's timeout, and the OFFER was wasted work
(bench/RESULTS.md, 8,000 DISCOVERs/s). So:

- every datagram that is not a DISCOVER (REQUEST, DECLINE, RELEASE, INFORM,
  and whatever cannot be classified cheaply) is decided first, in arrival
  order: a REQUEST completes a lease a client is waiting for (RFC 2131
  section 4.3.2), and their number is bounded by the OFFERs sent (and by the
  renewals, spread over the lease time);
- DISCOVERs wait in a `DiscoverBacklog` and at most `budget` of them are
  decided per pass, newest first: under overload the newest DISCOVER has the
  most time left before its client gives up (LIFO), while the oldest is the
  likeliest to have been retransmitted already;
- a DISCOVER older than `max_age` is shed: RFC 2131 section 4.1 has clients
  retransmit after about 4 s, so an OFFER later than half of that arrives
  about when the retransmission does, and the retransmission is answered in
  its place. Past `capacity` waiting DISCOVERs, the oldest is shed.

Shedding a DISCOVER costs a receive and `peek_message_type`; deciding it
costs a parse, an address choice and a reply.

Pure stdlib (relay.proto rules): the caller passes `now` (monotonic seconds).
"""

from __future__ import annotations

from collections import deque

from relay.proto.dhcp.packet import DhcpError

# Half the ~4 s first retransmission interval of RFC 2131 section 4.1.
MAX_AGE = 2.0
# Past this many waiting DISCOVERs the oldest is dropped (a few hundred kilobytes).
CAPACITY = 1024


class DiscoverBacklog:
    """The DISCOVERs not decided yet, newest taken first; old or surplus ones shed.

    Each is kept as its bytes and source address, with the time it was read.
    """

    __slots__ = ("_capacity", "_max_age", "_waiting", "shed")

    def __init__(self, capacity: int = CAPACITY, max_age: float = MAX_AGE) -> None:
        if capacity < 1 or max_age <= 0:
            raise DhcpError("the DISCOVER backlog needs a positive capacity and age")
        self._capacity = capacity
        self._max_age = max_age
        self._waiting: deque[tuple[float, bytes, str]] = deque()
        # DISCOVERs dropped unanswered since the backlog was made.
        self.shed = 0

    def __len__(self) -> int:
        return len(self._waiting)

    def add(self, data: bytes, source: str, received: float) -> None:
        """Queue one DISCOVER; the oldest waiting one is shed when the backlog is full."""
        if len(self._waiting) >= self._capacity:
            self._waiting.popleft()
            self.shed += 1
        self._waiting.append((received, data, source))

    def take(self, budget: int, now: float) -> list[tuple[bytes, str]]:
        """Up to `budget` DISCOVERs (bytes, source) to decide now, newest first.

        The ones that have waited longer than the maximum age are shed.
        """
        waiting = self._waiting
        oldest = now - self._max_age
        while waiting and waiting[0][0] < oldest:
            waiting.popleft()
            self.shed += 1
        taken = [waiting.pop() for _ in range(min(budget, len(waiting)))]
        return [(data, source) for _received, data, source in taken]
