"""Reconnect delays: exponential backoff with jitter.

After an outage every relay of a tenant reconnects; "equal jitter" (a delay
drawn uniformly between half the exponential ceiling and the ceiling) spreads
them out without ever retrying at once in a tight loop. Pure: the random
source is injected.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass(slots=True)
class Backoff:
    base: float = 1.0
    cap: float = 300.0
    rng: random.Random = field(default_factory=random.Random)
    failures: int = 0

    def next_delay(self) -> float:
        """Count one more failure and return how long to wait before the next try."""
        ceiling = min(self.cap, self.base * 2.0 ** min(self.failures, 32))
        self.failures += 1
        return self.rng.uniform(ceiling / 2, ceiling)

    def reset(self) -> None:
        self.failures = 0
