"""Reads and writes of the policy tables; the only code that touches them."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from policies.models import PolicyGroup, PolicyRule, PolicyVersion, RuleProposal
from policies.rules import Rule, stored_rule


class PolicyConflict(Exception):
    """Another edit published the same version first; the caller may retry on the new rule set."""


@dataclass(frozen=True)
class Version:
    version: int
    created_at: datetime
    actor: str
    reason: str
    rules: tuple[Rule, ...]
    groups: tuple[tuple[str, str, str], ...]
    rollback_of: int | None = None  # the earlier version this one published again


@dataclass(frozen=True)
class RuleSet:
    version: int
    rules: tuple[Rule, ...]
    groups: tuple[tuple[str, str, str], ...]  # (kind, member, group)


class PolicyStore:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def version(self) -> int:
        async with self._sessions() as session:
            return (await session.scalar(select(func.max(PolicyVersion.version)))) or 0

    async def current(self) -> RuleSet:
        async with self._sessions() as session:
            version = (await session.scalar(select(func.max(PolicyVersion.version)))) or 0
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
    ) -> int:
        """Replace the rule set with `rules` and `groups` as a new version; return its number. `rollback_of`
        marks the version as a rollback to that earlier one.

        With `expected`, refuse (PolicyConflict) unless the current version is still `expected`, so an edit
        computed from one version never silently undoes another made meanwhile.
        """
        try:
            return await self._publish(rules, groups, actor, reason, at, expected, rollback_of)
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
    ) -> int:
        async with self._sessions() as session, session.begin():
            current = (await session.scalar(select(func.max(PolicyVersion.version)))) or 0
            if expected is not None and current != expected:
                raise PolicyConflict(f"the rules changed meanwhile: version {current}, not {expected}")
            version = current + 1
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
                )
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
