"""Who hears about a change, and when to try a failed delivery again: pure decisions of the
notification service (broker/notifications/service.py does the I/O around them)."""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping

CHANGE_NOTIFICATION = "change-notification"  # the purpose whose sharing rules decide who may hear


def recipients(related: Iterable[str], sender: str, zones: Mapping[str, str], opted_out: set[str]) -> list[str]:
    """Agencies with a current relationship to the subject, except the sender, whose rules put hearing about
    the category in the white zone (grey and black do not deliver), and that have not opted out of it."""
    return sorted(
        {agency for agency in related if agency != sender and zones.get(agency) == "white" and agency not in opted_out}
    )


def backoff(attempts: int, base_s: float, cap_s: float, rng: random.Random) -> float:
    """Seconds before the next try after `attempts` failures: exponential, capped, with full jitter in its
    upper half so that many deliveries failing together do not retry together."""
    delay = min(cap_s, base_s * 2.0 ** max(0, attempts - 1))
    return delay / 2 + rng.random() * delay / 2


def exhausted(attempts: int, age_s: float, max_attempts: int, max_age_s: float) -> bool:
    """A delivery that has been tried `max_attempts` times, or has waited `max_age_s`, is dead-lettered."""
    return attempts >= max_attempts or age_s >= max_age_s
