"""A token bucket for the agent's WAN bandwidth (issue 6: "limits its WAN bandwidth
when configured"). Pure: the caller passes `now` and sleeps the delay it gets back.

The bucket may go into debt: a chunk larger than the burst is still taken whole,
and the delay returned is how long the debt takes to repay at `rate`. Over any
long window the bytes taken therefore never exceed `burst + rate * elapsed`.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class TokenBucket:
    rate: float
    burst: float
    tokens: float = 0.0
    stamp: float | None = None

    def take(self, count: int, now: float) -> float:
        """Spend `count` bytes at `now`; the seconds to wait before sending more."""
        if self.rate <= 0:
            return 0.0
        if self.stamp is None:
            self.tokens = self.burst
        else:
            elapsed = max(0.0, now - self.stamp)
            self.tokens = min(self.burst, self.tokens + elapsed * self.rate)
        self.stamp = now
        self.tokens -= count
        return max(0.0, -self.tokens / self.rate)


def bucket(rate_limit: int) -> TokenBucket:
    """The agent's bucket for `rate_limit` bytes/s: a burst of a quarter second."""
    return TokenBucket(rate=float(rate_limit), burst=max(1.0, rate_limit / 4))
