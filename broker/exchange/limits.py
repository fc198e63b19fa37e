"""Per-principal limits: a token bucket per principal, refilled continuously (pure, clock passed in), and a cap
on the requests each principal may have inside the hub at once."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class TokenBucket:
    rate: float
    burst: float
    tokens: float = field(init=False)
    updated: float = field(default=0.0)

    def __post_init__(self) -> None:
        self.tokens = self.burst

    def take(self, now: float) -> float | None:
        """Take one token; None when granted, else the seconds until one is available."""
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1:
            self.tokens -= 1
            return None
        return (1 - self.tokens) / self.rate


class RateLimiter:
    def __init__(self, rate: float, burst: float) -> None:
        self.rate = rate
        self.burst = burst
        self._buckets: dict[str, TokenBucket] = {}

    def take(self, principal: str, now: float) -> float | None:
        bucket = self._buckets.get(principal)
        if bucket is None:
            bucket = self._buckets[principal] = TokenBucket(self.rate, self.burst, updated=now)
        return bucket.take(now)


class ConcurrencyCap:
    """At most `most` requests of one principal inside the hub at once; one more is refused, not queued, so
    a principal holding slow requests open cannot take the hub's capacity from the others."""

    def __init__(self, most: int) -> None:
        self.most = most
        self._in_flight: dict[str, int] = {}

    def enter(self, principal: str) -> bool:
        """Take a slot; False when the principal already has `most` requests in the hub."""
        count = self._in_flight.get(principal, 0)
        if count >= self.most:
            return False
        self._in_flight[principal] = count + 1
        return True

    def leave(self, principal: str) -> None:
        count = self._in_flight[principal] - 1
        if count:
            self._in_flight[principal] = count
        else:
            del self._in_flight[principal]

    def in_flight(self, principal: str) -> int:
        return self._in_flight.get(principal, 0)
