"""The citizen's access log: which delivered exchanges about a person the person may see, and how each is
told (who asked, who held the data, what, when, why, on what ground). Accesses for a confidential purpose are withheld,
without a trace, until the purpose's embargo has passed. Pure decisions; the handler reads the store.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from directory.store import PurposeEntry


def disclosed(purpose: PurposeEntry | None, at: datetime, now: datetime) -> bool:
    """Whether an access made at `at` for `purpose` may be shown at `now`."""
    if purpose is None or not purpose.confidential:
        return True
    return purpose.embargo_days is not None and now >= at + timedelta(days=purpose.embargo_days)


def access_entry(
    record: Mapping[str, Any], agencies: Mapping[str, str], purpose: PurposeEntry | None
) -> dict[str, Any]:
    """One access as the citizen reads it, from an audit record in export form."""

    def agency(agency_id: str | None) -> dict[str, str | None]:
        return {"id": agency_id, "name": agencies.get(agency_id or "")}

    return {
        "at": record["at"],
        "exchange": record["exchange"],
        "requester": agency(record["requester"]),
        "holder": agency(record["holder"]),
        "category": record["category"],
        "purpose": {"name": record["purpose"], "description": None if purpose is None else purpose.description},
        "ground": record["ground"],
        "consent": record["consent_id"],
        "emergency": record["emergency"],
    }
