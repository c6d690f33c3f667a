"""Time as the simulated phones see it, so tests need not wait hours.

Polling periods are at least an hour (phones.md section 3,
`prov.polling.period >= 3600`); a lab run compresses them with a time scale,
and tests may inject a clock of their own.
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol


class Clock(Protocol):
    """What a phone needs from time: simulated wall time, real elapsed time, and sleeping."""

    def time(self) -> float:
        """Simulated seconds since the epoch (used for time-of-day polling windows)."""
        ...

    def monotonic(self) -> float:
        """Real seconds, for measuring how long a boot took."""
        ...

    async def sleep(self, seconds: float) -> None:
        """Wait `seconds` of simulated time."""
        ...


class ScaledClock:
    """Simulated time runs 1/time_scale times faster than real time (0.001: an hour in 3.6 s)."""

    def __init__(self, time_scale: float = 1.0, *, start: float | None = None) -> None:
        if not time_scale > 0:
            raise ValueError(f"time_scale must be positive, got {time_scale}")
        self.time_scale = time_scale
        self._start_wall = time.time() if start is None else start
        self._start_real = time.monotonic()

    def time(self) -> float:
        return self._start_wall + (time.monotonic() - self._start_real) / self.time_scale

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds) * self.time_scale)
