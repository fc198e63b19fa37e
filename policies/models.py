"""Policy tables: the current rules and role groupings, every version ever published, and the changes waiting for
a second administrator's approval.

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
    `rollback_of` names the earlier version a rollback published again; `approved_by` and `approval_reason` the
    second administrator who approved it and why (four eyes: policies/changes.py), None when one sufficed."""

    __tablename__ = "policy_versions"

    version: Mapped[int] = mapped_column(primary_key=True, autoincrement=False)
    created_at: Mapped[datetime]
    actor: Mapped[str] = mapped_column(String(128))
    reason: Mapped[str] = mapped_column(String(1000))
    snapshot: Mapped[dict[str, Any]]
    rollback_of: Mapped[int | None]
    approved_by: Mapped[str | None] = mapped_column(String(128))
    approval_reason: Mapped[str | None] = mapped_column(String(1000))


class PolicyChange(Base):
    """An edit of the rules held for a second administrator (policies/changes.py): what it asks, against which
    version, who proposed it and why, and once decided who decided it, why, and the version it published. Rows
    are added and decided once, never deleted."""

    __tablename__ = "policy_changes"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    asks: Mapped[dict[str, Any]]
    against: Mapped[int]
    proposed_by: Mapped[str] = mapped_column(String(128))
    reason: Mapped[str] = mapped_column(String(1000))
    proposed_at: Mapped[datetime]
    status: Mapped[str] = mapped_column(String(16), index=True)  # pending, approved, rejected, superseded
    decided_by: Mapped[str | None] = mapped_column(String(128))
    decision_reason: Mapped[str | None] = mapped_column(String(1000))
    decided_at: Mapped[datetime | None]
    version: Mapped[int | None]


class PolicyApprovals(Base):
    """How many administrators an edit of the rules needs, as serving hubs were configured (`policy_approvals`):
    a row each time it changed, never updated or deleted. Every front end reads the newest, so a command run
    without the hub's configuration edits under the same four eyes."""

    __tablename__ = "policy_approvals"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    approvals: Mapped[int]
    set_at: Mapped[datetime]


class ReviewRecord(Base):
    """A grey-zone exchange waiting for, or decided by, a privacy officer."""

    __tablename__ = "reviews"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), default="grey")  # grey: before the exchange; emergency: after
    exchange: Mapped[str] = mapped_column(String(40))
    requester: Mapped[str] = mapped_column(String(63), index=True)
    subject: Mapped[str] = mapped_column(String(64), index=True)  # a person's page and report read by it
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
