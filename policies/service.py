"""The policy service: Casbin decides zones for exchanges and which endpoints a role may call.

Decisions are cached per (requester, category, purpose) and the cache is dropped whenever the published
policy version changes; `refresh` polls that version so every hub process follows an edit within seconds.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import casbin
from casbin.persist.adapter import Adapter

from policies.rules import ZONES, Decision, Rule, most_specific_first
from policies.store import PolicyStore, RuleSet


class _RuleSetAdapter(Adapter):  # type: ignore[misc]
    """Feeds Casbin a rule set already read from the store; the store, not Casbin, writes rules."""

    def __init__(self, rule_set: RuleSet) -> None:
        self._rule_set = rule_set

    def load_policy(self, model: Any) -> None:
        for rule in most_specific_first(self._rule_set.rules):
            model.add_policy("p", "p", [rule.requester, rule.category, rule.purpose, rule.zone, rule.id])
        for kind, member, group in self._rule_set.groups:
            model.add_policy("g", kind, [member, group])


def _model_path(name: str) -> str:
    return str(Path(__file__).with_name(name))


class SharingPolicy:
    """One published rule set, compiled into a Casbin enforcer. Immutable once built."""

    def __init__(self, rule_set: RuleSet) -> None:
        self.version = rule_set.version
        self._rules = {rule.id: rule for rule in rule_set.rules}
        self._enforcer = casbin.Enforcer(_model_path("sharing.conf"), _RuleSetAdapter(rule_set))

    def decide(self, requester: str, category: str, purpose: str) -> Decision:
        """Black beats grey beats white; nothing matching is black (rule None)."""
        subject = f"agency:{requester}"
        for zone in ZONES:
            allowed, explanation = self._enforcer.enforce_ex(subject, category, purpose, zone)
            if allowed:
                return Decision(zone, self._rules[explanation[4]], self.version)
        return Decision("black", None, self.version)


class PolicyService:
    def __init__(self, store: PolicyStore) -> None:
        self._store = store
        self._policy: SharingPolicy | None = None
        self._decisions: dict[tuple[str, str, str], Decision] = {}

    @property
    def version(self) -> int:
        return 0 if self._policy is None else self._policy.version

    async def refresh(self) -> bool:
        """Load the published rule set if its version changed; True when it did."""
        if self._policy is not None and await self._store.version() == self._policy.version:
            return False
        rule_set = await self._store.current()
        # Building the enforcer scans every rule: keep it off the event loop.
        self._policy = await asyncio.to_thread(SharingPolicy, rule_set)
        self._decisions = {}
        return True

    async def decide(self, requester: str, category: str, purpose: str) -> Decision:
        key = (requester, category, purpose)
        decision = self._decisions.get(key)
        if decision is None:
            if self._policy is None:
                await self.refresh()
            assert self._policy is not None
            # A miss scans the rules in Python (milliseconds with thousands of rules): off the loop.
            decision = await asyncio.to_thread(self._policy.decide, requester, category, purpose)
            self._decisions[key] = decision
        return decision

    async def rules(self) -> RuleSet:
        return await self._store.current()

    async def replace(
        self, rules: list[Rule], groups: list[tuple[str, str, str]], actor: str, reason: str, at: Any
    ) -> int:
        version = await self._store.publish(rules, groups, actor, reason, at)
        await self.refresh()
        return version


class OperatorGate:
    """Which role may call which endpoint (policies/operator_rules.csv through policies/operators.conf)."""

    def __init__(self) -> None:
        self._enforcer = casbin.Enforcer(_model_path("operators.conf"), _model_path("operator_rules.csv"))

    def allows(self, role: str, path: str, method: str) -> bool:
        return bool(self._enforcer.enforce(role, path, method))
