"""Per-principal limits: a token bucket per principal, refilled continuously (pure, clock passed in), and a cap
on the requests each principal may have inside the hub at once; and per peer address, a bucket of the requests
refused before their caller was authenticated, checked before authenticating the next."""

from __future__ import annotations

from dataclasses import dataclass, field
from ipaddress import IPv6Address, IPv6Network, ip_address, ip_network

from cachetools import LRUCache


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
        wait = self.wait(now)
        if wait is None:
            self.tokens -= 1
        return wait

    def wait(self, now: float) -> float | None:
        """None while a token is available, else the seconds until one is."""
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        return None if self.tokens >= 1 else (1 - self.tokens) / self.rate

    def charge(self, now: float) -> None:
        """Take one token even if there is none: what was taken beyond the bucket is waited for afterwards."""
        self.wait(now)
        self.tokens -= 1


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


@dataclass(frozen=True)
class Lockout:
    wait: float  # seconds until the peer's next request is let through
    first: bool  # the first request refused since the peer's last one was let through


@dataclass
class _Peer:
    bucket: TokenBucket
    refused: int = 0  # requests refused since the peer's last one was let through


class PeerLimiter:
    """Requests refused before their caller was authenticated (a bad or unknown signature, an unparseable
    request, ...), per peer address: each draws a token from the peer's bucket, and while the bucket is empty the
    peer's requests are refused before they are read (and draw nothing more). Authenticated requests draw nothing.
    At most `most_peers` addresses are followed, the least recently seen forgotten first (a forgotten peer starts
    again with a full bucket)."""

    def __init__(self, rate: float, burst: float, trusted_proxies: str = "", most_peers: int = 65_536) -> None:
        self.rate = rate
        self.burst = burst
        self._trusted = [ip_network(part.strip(), strict=False) for part in trusted_proxies.split(",") if part.strip()]
        self._peers: LRUCache[str, _Peer] = LRUCache(most_peers)

    def peer(self, remote: str | None, forwarded_for: str) -> str | None:
        """The address a request counts against: the connection's, or where that is a trusted proxy the last one
        X-Forwarded-For names that is not; an IPv6 address as its /64. None when there is no such address."""
        for hop in [remote or "", *reversed(forwarded_for.split(","))]:
            try:
                address = ip_address(hop.strip())
            except ValueError:
                return None
            if not any(address in network for network in self._trusted):
                return str(IPv6Network((address, 64), strict=False) if isinstance(address, IPv6Address) else address)
        return None

    def lockout(self, peer: str | None, now: float) -> Lockout | None:
        """None when the peer's request may go on (always, for a request from no known address), else how long
        the peer must wait."""
        state = None if peer is None else self._peers.get(peer)
        if state is None:
            return None
        wait = state.bucket.wait(now)
        if wait is None:
            state.refused = 0
            return None
        state.refused += 1
        return Lockout(wait, state.refused == 1)

    def refused(self, peer: str | None, now: float) -> None:
        """A request of the peer was refused before it was authenticated."""
        if peer is None:
            return
        state = self._peers.get(peer)
        if state is None:
            state = self._peers[peer] = _Peer(TokenBucket(self.rate, self.burst, updated=now))
        state.bucket.charge(now)
