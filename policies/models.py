"""Policy tables: the current rules and role groupings, and every version ever published.

Only policies/store.py touches them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from broker.base.store import Base


class PolicyRule(Base):
    __tablename__ = "policy_rules"

    id: Mapped[str] = mapped_column(String(63), primary_key=True)
    requester: Mapped[str] = mapped_column(String(128))
    category: Mapped[str] = mapped_column(String(63))
    purpose: Mapped[str] = mapped_column(String(63))
    zone: Mapped[str] = mapped_column(String(8))
    consent: Mapped[bool]
    fields: Mapped[list[str] | None]
    emergency: Mapped[bool] = mapped_column(default=False)
    ground: Mapped[str | None] = mapped_column(String(500))  # policies.rules.MAX_GROUND


class PolicyGroup(Base):
    """`member` belongs to `group`: an agency to a role (`g`) or a category to a category group (`g2`)."""

    __tablename__ = "policy_groups"

    kind: Mapped[str] = mapped_column(String(4), primary_key=True)
    member: Mapped[str] = mapped_column(String(128), primary_key=True)
    group: Mapped[str] = mapped_column(String(128), primary_key=True)


class PolicyVersion(Base):
    """A published rule set: who changed it, when and why, and the rules and groups as they then stood;
    `rollback_of` names the earlier version a rollback published again."""

    __tablename__ = "policy_versions"

    version: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    created_at: Mapped[datetime]
    actor: Mapped[str] = mapped_column(String(128))
    reason: Mapped[str] = mapped_column(String(1000))
    snapshot: Mapped[dict[str, Any]]
    rollback_of: Mapped[int | None]


class ReviewRecord(Base):
    """A grey-zone exchange waiting for, or decided by, a privacy officer."""

    __tablename__ = "reviews"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), default="grey")  # grey: before the exchange; emergency: after
    exchange: Mapped[str] = mapped_column(String(40))
    requester: Mapped[str] = mapped_column(String(63), index=True)
    subject: Mapped[str] = mapped_column(String(64))
    category: Mapped[str] = mapped_column(String(63))
    purpose: Mapped[str] = mapped_column(String(63))
    rule_id: Mapped[str] = mapped_column(String(63))
    policy_version: Mapped[int]
    justification: Mapped[str | None] = mapped_column(String(2000))
    status: Mapped[str] = mapped_column(String(16), index=True)
    created_at: Mapped[datetime]
    decided_by: Mapped[str | None] = mapped_column(String(63))
    decided_at: Mapped[datetime | None]
    decision_reason: Mapped[str | None] = mapped_column(String(2000))
    valid_until: Mapped[datetime | None]
    used_by_exchange: Mapped[str | None] = mapped_column(String(40))


class RuleProposal(Base):
    """A privacy officer's request to make a review's decision standing, for an administrator to accept."""

    __tablename__ = "rule_proposals"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    review_id: Mapped[str] = mapped_column(String(40))
    rule: Mapped[dict[str, Any]]
    reason: Mapped[str] = mapped_column(String(2000))
    proposed_by: Mapped[str] = mapped_column(String(63))
    proposed_at: Mapped[datetime]
    status: Mapped[str] = mapped_column(String(16), index=True)  # open, accepted
    accepted_version: Mapped[int | None]
