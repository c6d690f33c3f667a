"""Failed-login throttling per source address.

After FREE_FAILURES failures inside WINDOW seconds, a source must wait before
its next attempt (2 s after the fifth failure), twice as long after every further
failure, up to MAX_DELAY.
A success clears the source. Pure: `now` is an argument, memory is bounded.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

FREE_FAILURES = 5
WINDOW = 600.0
MAX_DELAY = 900.0
MAX_SOURCES = 10_000


@dataclass
class _Record:
    failures: int
    first: float
    blocked_until: float


class LoginThrottle:
    def __init__(self) -> None:
        self._sources: OrderedDict[str, _Record] = OrderedDict()

    def retry_after(self, source: str, now: float) -> float:
        """Seconds the source must still wait (0 when it may try)."""
        record = self._sources.get(source)
        if record is None:
            return 0.0
        return max(0.0, record.blocked_until - now)

    def failure(self, source: str, now: float) -> float:
        """Count a failed login; returns the delay now imposed (0 while still free)."""
        record = self._sources.get(source)
        if record is None or (now - record.first > WINDOW and record.blocked_until <= now):
            record = _Record(0, now, 0.0)
        record.failures += 1
        delay = 0.0
        if record.failures >= FREE_FAILURES:
            delay = min(MAX_DELAY, 2.0 ** (record.failures - FREE_FAILURES + 1))
            record.blocked_until = now + delay
        self._sources[source] = record
        self._sources.move_to_end(source)
        while len(self._sources) > MAX_SOURCES:
            self._sources.popitem(last=False)
        return delay

    def success(self, source: str) -> None:
        self._sources.pop(source, None)
