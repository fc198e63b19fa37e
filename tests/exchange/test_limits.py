"""The per-agency token bucket (pure: the clock is passed in)."""

from broker.exchange.limits import RateLimiter


def test_bucket_refills_at_its_rate() -> None:
    limiter = RateLimiter(rate=2, burst=2)
    assert limiter.take("a", 0.0) is None and limiter.take("a", 0.0) is None
    wait = limiter.take("a", 0.0)
    assert wait is not None and abs(wait - 0.5) < 1e-9
    assert limiter.take("b", 0.0) is None  # buckets are per principal
    assert limiter.take("a", 0.5) is None
