"""Reads and writes of the policy tables; the only code that touches them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from policies.models import PolicyGroup, PolicyRule, PolicyVersion
from policies.rules import Rule


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
        self, rules: list[Rule], groups: list[tuple[str, str, str]], actor: str, reason: str, at: datetime
    ) -> int:
        """Replace the rule set with `rules` and `groups` as a new version; return its number."""
        async with self._sessions() as session, session.begin():
            version = ((await session.scalar(select(func.max(PolicyVersion.version)))) or 0) + 1
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
                )
            )
        return version


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
    )
