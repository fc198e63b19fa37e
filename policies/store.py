"""Reads and writes of the policy tables; the only code that touches them."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from broker.base.store.plans import Plan
from policies.changes import STRICT, Change
from policies.models import PolicyApprovals, PolicyChange, PolicyGroup, PolicyRule, PolicyVersion, RuleProposal
from policies.rules import Rule, stored_rule


class PolicyConflict(Exception):
    """Another edit published the same version first; the caller may retry on the new rule set."""


class ChangeNotPending(Exception):
    """A decision on a change that is not pending: `status` is the change's, None when there is no such change."""

    def __init__(self, change_id: str, status: str | None) -> None:
        super().__init__(change_id)
        self.change_id, self.status = change_id, status


@dataclass(frozen=True)
class Approval:
    """A second administrator's approval of a held change, published with the version it makes."""

    change: str
    by: str
    reason: str


@dataclass(frozen=True)
class Version:
    version: int
    created_at: datetime
    actor: str
    reason: str
    rules: tuple[Rule, ...]
    groups: tuple[tuple[str, str, str], ...]
    rollback_of: int | None = None  # the earlier version this one published again
    approved_by: str | None = None  # the second administrator who approved it (four eyes), and why
    approval_reason: str | None = None


@dataclass(frozen=True)
class RuleSet:
    version: int
    rules: tuple[Rule, ...]
    groups: tuple[tuple[str, str, str], ...]  # (kind, member, group)


VERSION = select(func.max(PolicyVersion.version))


# The published version (0 before any), read with other reads (an exchange's).
PUBLISHED: Plan[int] = Plan(((VERSION, {}),), lambda rows: rows[0][0][0] or 0)


class PolicyStore:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def version(self) -> int:
        async with self._sessions() as session:
            return (await session.scalar(VERSION)) or 0

    async def current(self) -> RuleSet:
        async with self._sessions() as session:
            version = (await session.scalar(VERSION)) or 0
            rules = (await session.scalars(select(PolicyRule).order_by(PolicyRule.id))).all()
            groups = (await session.scalars(select(PolicyGroup))).all()
        return RuleSet(
            version,
            tuple(_rule(row) for row in rules),
            tuple((row.kind, row.member, row.group) for row in groups),
        )

    async def publish(
        self,
        rules: list[Rule],
        groups: list[tuple[str, str, str]],
        actor: str,
        reason: str,
        at: datetime,
        expected: int | None = None,
        rollback_of: int | None = None,
        approval: Approval | None = None,
    ) -> int:
        """Replace the rule set with `rules` and `groups` as a new version; return its number. `rollback_of`
        marks the version as a rollback to that earlier one.

        With `expected`, refuse (PolicyConflict) unless the current version is still `expected`, so an edit
        computed from one version never silently undoes another made meanwhile. With `approval`, the change it
        approves is decided in the same transaction (ChangeNotPending unless it is still pending). Held changes
        proposed against an earlier version that only apply to it (STRICT) can never be approved now: they are
        marked superseded.
        """
        try:
            return await self._publish(rules, groups, actor, reason, at, expected, rollback_of, approval)
        except IntegrityError as error:
            raise PolicyConflict("another edit published this version first") from error

    async def _publish(
        self,
        rules: list[Rule],
        groups: list[tuple[str, str, str]],
        actor: str,
        reason: str,
        at: datetime,
        expected: int | None,
        rollback_of: int | None,
        approval: Approval | None,
    ) -> int:
        async with self._sessions() as session, session.begin():
            current = (await session.scalar(select(func.max(PolicyVersion.version)))) or 0
            if expected is not None and current != expected:
                raise PolicyConflict(f"the rules changed meanwhile: version {current}, not {expected}")
            version = current + 1
            if approval is not None:
                await _decide(session, approval.change, "approved", approval.by, approval.reason, at, version)
            await session.execute(delete(PolicyRule))
            await session.execute(delete(PolicyGroup))
            session.add_all(
                PolicyRule(
                    id=rule.id,
                    requester=rule.requester,
                    category=rule.category,
                    purpose=rule.purpose,
                    zone=rule.zone,
                    consent=rule.consent,
                    fields=None if rule.fields is None else list(rule.fields),
                    emergency=rule.emergency,
                    ground=rule.ground,
                )
                for rule in rules
            )
            session.add_all(PolicyGroup(kind=kind, member=member, group=group) for kind, member, group in groups)
            session.add(
                PolicyVersion(
                    version=version,
                    created_at=at,
                    actor=actor,
                    reason=reason,
                    snapshot={
                        "rules": [rule.as_json() for rule in rules],
                        "groups": [list(g) for g in groups],
                    },
                    rollback_of=rollback_of,
                    approved_by=None if approval is None else approval.by,
                    approval_reason=None if approval is None else approval.reason,
                )
            )
            await session.execute(
                update(PolicyChange)
                .where(PolicyChange.status == "pending", PolicyChange.kind.in_(STRICT), PolicyChange.against < version)
                .values(status="superseded", decided_at=at, decision_reason=f"the rules moved to version {version}")
            )
        return version

    async def versions(self) -> list[Version]:
        async with self._sessions() as session:
            rows = (await session.scalars(select(PolicyVersion).order_by(PolicyVersion.version))).all()
        return [_version(row) for row in rows]

    async def version_at(self, number: int) -> Version | None:
        async with self._sessions() as session:
            row = await session.get(PolicyVersion, number)
        return None if row is None else _version(row)

    async def propose(self, proposal: Proposal) -> None:
        async with self._sessions() as session, session.begin():
            session.add(RuleProposal(**{**asdict(proposal), "rule": proposal.rule.as_json()}))

    async def proposals(self, status: str) -> list[Proposal]:
        query = select(RuleProposal).where(RuleProposal.status == status).order_by(RuleProposal.proposed_at)
        async with self._sessions() as session:
            rows = (await session.scalars(query)).all()
        return [_proposal(row) for row in rows]

    async def proposal(self, proposal_id: str) -> Proposal | None:
        async with self._sessions() as session:
            row = await session.get(RuleProposal, proposal_id)
        return None if row is None else _proposal(row)

    async def accept(self, proposal_id: str, version: int) -> None:
        async with self._sessions() as session, session.begin():
            await session.execute(
                update(RuleProposal)
                .where(RuleProposal.id == proposal_id)
                .values(status="accepted", accepted_version=version)
            )

    async def approvals(self) -> int:
        """The approvals an edit needs, as the serving hubs last declared it (1 until one declared otherwise)."""
        async with self._sessions() as session:
            newest = select(PolicyApprovals.approvals).order_by(PolicyApprovals.id.desc()).limit(1)
            return (await session.scalar(newest)) or 1

    async def declare_approvals(self, approvals: int, at: datetime) -> None:
        """Record a serving hub's `policy_approvals` where it differs from the newest declared."""
        if approvals != await self.approvals():
            async with self._sessions() as session, session.begin():
                session.add(PolicyApprovals(approvals=approvals, set_at=at))

    async def hold(self, change: Change) -> None:
        async with self._sessions() as session, session.begin():
            session.add(PolicyChange(**asdict(change)))

    async def changes(self, status: str | None) -> list[Change]:
        """The changes with `status` (every one with None), oldest first."""
        query = select(PolicyChange).order_by(PolicyChange.proposed_at, PolicyChange.id)
        if status is not None:
            query = query.where(PolicyChange.status == status)
        async with self._sessions() as session:
            rows = (await session.scalars(query)).all()
        return [_change(row) for row in rows]

    async def change(self, change_id: str) -> Change | None:
        async with self._sessions() as session:
            row = await session.get(PolicyChange, change_id)
        return None if row is None else _change(row)

    async def reject(self, change_id: str, by: str, reason: str, at: datetime) -> Change:
        """Record the rejection of a pending change; raises ChangeNotPending otherwise."""
        async with self._sessions() as session, session.begin():
            await _decide(session, change_id, "rejected", by, reason, at, None)
            row = await session.get(PolicyChange, change_id)
            assert row is not None  # noqa: S101 -- _decide found it; for the type checker
            await session.refresh(row)
            return _change(row)


async def _decide(
    session: AsyncSession, change_id: str, status: str, by: str, reason: str, at: datetime, version: int | None
) -> None:
    result = await session.execute(
        update(PolicyChange)
        .where(PolicyChange.id == change_id, PolicyChange.status == "pending")
        .values(status=status, decided_by=by, decision_reason=reason, decided_at=at, version=version)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        row = await session.get(PolicyChange, change_id)
        raise ChangeNotPending(change_id, None if row is None else row.status)


def _change(row: PolicyChange) -> Change:
    return Change(**{name: getattr(row, name) for name in Change.__dataclass_fields__})


@dataclass(frozen=True)
class Proposal:
    id: str
    review_id: str
    rule: Rule
    reason: str
    proposed_by: str
    proposed_at: datetime
    status: str = "open"
    accepted_version: int | None = None

    def as_json(self) -> dict[str, Any]:
        return {
            "proposal": self.id,
            "review": self.review_id,
            "rule": self.rule.as_json(),
            "reason": self.reason,
            "proposed_by": self.proposed_by,
            "proposed_at": self.proposed_at.isoformat(),
            "status": self.status,
            "accepted_version": self.accepted_version,
        }


def _proposal(row: RuleProposal) -> Proposal:
    return Proposal(
        row.id,
        row.review_id,
        stored_rule(row.rule),
        row.reason,
        row.proposed_by,
        row.proposed_at,
        row.status,
        row.accepted_version,
    )


def _version(row: PolicyVersion) -> Version:
    return Version(
        row.version,
        row.created_at,
        row.actor,
        row.reason,
        tuple(stored_rule(rule) for rule in row.snapshot["rules"]),
        tuple((kind, member, group) for kind, member, group in row.snapshot["groups"]),
        row.rollback_of,
        row.approved_by,
        row.approval_reason,
    )


def _rule(row: PolicyRule) -> Rule:
    return Rule(
        row.id,
        row.requester,
        row.category,
        row.purpose,
        row.zone,
        row.consent,
        None if row.fields is None else tuple(row.fields),
        row.emergency,
        row.ground,
    )
