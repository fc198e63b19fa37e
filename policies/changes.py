"""Four eyes on the sharing rules: with `policy_approvals = 2` an edit is held as a change until a second
administrator approves it, and its dry run re-decides the exchanges recently decided under the rules it would
publish. Pure values and functions; policies/service.py holds and publishes changes, policies/store.py keeps them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

KINDS = ("add", "remove", "rollback", "load", "replace", "accept")
# Proposed against one version: approved only while the rules are still at it (the approver sees what they approve).
STRICT = ("rollback", "replace")
STATUSES = ("pending", "approved", "rejected", "superseded")


@dataclass(frozen=True)
class Change:
    """An edit of the rules held for approval: its kind, what it asks (JSON), and the version it was proposed
    against; once decided, by whom, why, and the version it published."""

    id: str
    kind: str
    asks: dict[str, Any]
    against: int
    proposed_by: str
    reason: str
    proposed_at: datetime
    status: str = "pending"
    decided_by: str | None = None
    decision_reason: str | None = None
    decided_at: datetime | None = None
    version: int | None = None

    def as_json(self) -> dict[str, Any]:
        document = {
            name: value.isoformat() if isinstance(value, datetime) else value for name, value in asdict(self).items()
        }
        document["change"] = document.pop("id")
        return document


@dataclass(frozen=True)
class Pending:
    """What an edit held for approval answers: the change, and the approvals it has (its proposer's) and needs."""

    change: str
    approvals: int = 1
    needed: int = 2

    def as_json(self) -> dict[str, Any]:
        return {"change": self.change, "status": "pending", "approvals": self.approvals, "needed": self.needed}


@dataclass(frozen=True)
class Question:
    """Exchanges the audit log recorded with one (requester, category, purpose) decided in one zone."""

    requester: str
    category: str
    purpose: str
    zone: str
    exchanges: int


def dry_run(zone_of: Callable[[str, str, str], str], questions: Iterable[Question]) -> dict[str, Any]:
    """The exchanges examined, those a rule set (`zone_of`) would decide in another zone, and which questions."""
    examined, differ = 0, 0
    changed: list[dict[str, Any]] = []
    for question in questions:
        examined += question.exchanges
        would_be = zone_of(question.requester, question.category, question.purpose)
        if would_be != question.zone:
            differ += question.exchanges
            changed.append(
                {
                    "requester": question.requester,
                    "category": question.category,
                    "purpose": question.purpose,
                    "was": question.zone,
                    "would_be": would_be,
                    "exchanges": question.exchanges,
                }
            )
    changed.sort(key=lambda item: (-item["exchanges"], item["requester"], item["category"], item["purpose"]))
    return {"examined": examined, "differ": differ, "questions": changed}
