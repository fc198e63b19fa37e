"""Grey-zone reviews: opened when a rule puts an exchange in the grey zone, decided by a privacy officer,
and, once approved, good for one repeat of that exact exchange within its validity. Only this module
touches the reviews table.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from policies.models import ReviewRecord

APPROVAL_VALIDITY = timedelta(days=7)


@dataclass(frozen=True)
class Review:
    id: str
    exchange: str
    requester: str
    subject: str
    category: str
    purpose: str
    rule_id: str
    policy_version: int
    justification: str | None
    status: str  # pending, approved, rejected, used
    created_at: datetime
    decided_by: str | None = None
    decided_at: datetime | None = None
    decision_reason: str | None = None
    valid_until: datetime | None = None
    used_by_exchange: str | None = None
    kind: str = "grey"  # grey: decided before the exchange; emergency: reviewed after a break-the-glass access

    def as_json(self) -> dict[str, object]:
        document = {
            name: value.isoformat() if isinstance(value, datetime) else value for name, value in asdict(self).items()
        }
        document["review"] = document.pop("id")
        return document

    def covers(self, requester: str, subject: str, category: str, purpose: str) -> bool:
        return (self.requester, self.subject, self.category, self.purpose) == (requester, subject, category, purpose)


class ReviewNotPending(Exception):
    """A decision on a review that is not pending: `status` is the review's, None when there is no such review."""

    def __init__(self, review_id: str, status: str | None) -> None:
        super().__init__(review_id)
        self.review_id, self.status = review_id, status


class ReviewStore:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def open(self, review: Review) -> None:
        async with self._sessions() as session, session.begin():
            session.add(ReviewRecord(**asdict(review)))

    async def get(self, review_id: str) -> Review | None:
        async with self._sessions() as session:
            row = await session.get(ReviewRecord, review_id)
        return None if row is None else _review(row)

    async def with_status(self, status: str) -> list[Review]:
        query = select(ReviewRecord).where(ReviewRecord.status == status).order_by(ReviewRecord.created_at)
        async with self._sessions() as session:
            rows = (await session.scalars(query)).all()
        return [_review(row) for row in rows]

    async def about(self, subject: str) -> list[Review]:
        """Every review about `subject`, whatever its status, oldest first."""
        query = select(ReviewRecord).where(ReviewRecord.subject == subject).order_by(ReviewRecord.created_at)
        async with self._sessions() as session:
            rows = (await session.scalars(query)).all()
        return [_review(row) for row in rows]

    async def decide(self, review_id: str, approve: bool, reason: str, by: str, at: datetime) -> Review:
        """Record a privacy officer's decision on a pending review; raises ReviewNotPending otherwise."""
        values = {
            "status": "approved" if approve else "rejected",
            "decided_by": by,
            "decided_at": at,
            "decision_reason": reason,
            "valid_until": at + APPROVAL_VALIDITY if approve else None,
        }
        async with self._sessions() as session, session.begin():
            result = await session.execute(
                update(ReviewRecord)
                .where(ReviewRecord.id == review_id, ReviewRecord.status == "pending")
                .values(**values)
            )
            row = await session.get(ReviewRecord, review_id)
            if result.rowcount != 1 or row is None:  # type: ignore[attr-defined]
                raise ReviewNotPending(review_id, None if row is None else row.status)
            await session.refresh(row)
            return _review(row)

    async def use(self, review_id: str, exchange: str, at: datetime) -> bool:
        """Spend an approved, unexpired review on `exchange`; False if it was already spent or has expired."""
        async with self._sessions() as session, session.begin():
            result = await session.execute(
                update(ReviewRecord)
                .where(ReviewRecord.id == review_id, ReviewRecord.status == "approved")
                .where(ReviewRecord.valid_until > at)
                .values(status="used", used_by_exchange=exchange)
            )
        return bool(result.rowcount == 1)  # type: ignore[attr-defined]


def _review(row: ReviewRecord) -> Review:
    return Review(**{field.name: getattr(row, field.name) for field in fields(Review)})
