"""Grey-zone reviews: opened when a rule puts an exchange in the grey zone; only this module touches them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from policies.models import ReviewRecord


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
    status: str
    created_at: datetime

    def as_json(self) -> dict[str, object]:
        return {
            "review": self.id,
            "exchange": self.exchange,
            "requester": self.requester,
            "subject": self.subject,
            "category": self.category,
            "purpose": self.purpose,
            "rule": self.rule_id,
            "policy_version": self.policy_version,
            "justification": self.justification,
            "status": self.status,
            "created_at": self.created_at.isoformat(),
        }


class ReviewStore:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def open(self, review: Review) -> None:
        async with self._sessions() as session, session.begin():
            session.add(ReviewRecord(**{name: getattr(review, name) for name in Review.__dataclass_fields__}))

    async def with_status(self, status: str) -> list[Review]:
        query = select(ReviewRecord).where(ReviewRecord.status == status).order_by(ReviewRecord.created_at)
        async with self._sessions() as session:
            rows = (await session.scalars(query)).all()
        return [Review(**{name: getattr(row, name) for name in Review.__dataclass_fields__}) for row in rows]
