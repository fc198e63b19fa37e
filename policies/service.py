"""The policy service: Casbin decides zones for exchanges and which endpoints a role may call.

Decisions are cached per (requester, category, purpose), at most `max_decisions` of them, and the cache is
dropped whenever the published policy version changes; `refresh` polls that version so every hub process
follows an edit within seconds. Concurrent misses of one question share one evaluation.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import secrets
import threading
from collections.abc import Awaitable, Callable
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any, Literal

import casbin
from cachetools import LRUCache
from casbin.persist.adapter import Adapter, load_policy_line

from broker.base.caches import CacheSettings, ReadThrough
from broker.base.store.plans import Plan
from policies.changes import STRICT, Change, Pending, Question, dry_run
from policies.rules import (
    GROUND_NOT_RECORDED,
    UNASSIGNED,
    ZONES,
    Decision,
    Group,
    PolicyFile,
    Rule,
    changes,
    distinct_ids,
    fresh_rule_id,
    merged,
    most_specific_first,
    stored_rule,
    unchanged,
    unique_groups,
)
from policies.store import (
    PUBLISHED,
    Approval,
    ChangeNotPending,
    PolicyConflict,
    PolicyStore,
    Proposal,
    RuleSet,
)

Exists = Callable[[str], Awaitable[bool]]


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
    """One published rule set, decided by Casbin. Immutable once built.

    Casbin scans every rule it holds on each question (tens of milliseconds at 10,000 rules), so each
    requester gets an enforcer of its own holding only the rules that can match it: those naming the agency
    or one of its roles (Casbin's own role manager says which, transitively). A rule naming anyone else can
    never satisfy `g(r.sub, p.sub)`, so the answers are Casbin's over the whole set.
    """

    def __init__(self, rule_set: RuleSet, max_requesters: int = 4096) -> None:
        self.version = rule_set.version
        self._rule_set = rule_set
        self._rules = {rule.id: rule for rule in rule_set.rules}
        self._roles = _enforcer(RuleSet(rule_set.version, (), rule_set.groups))
        self._by_requester: LRUCache[str, casbin.Enforcer] = LRUCache(max_requesters)
        self._building = threading.Lock()  # decide() runs in worker threads

    def decide(self, requester: str, category: str, purpose: str) -> Decision:
        """Black beats grey beats white; nothing matching is black (rule None)."""
        subject = f"agency:{requester}"
        enforcer = self._enforcer_for(subject)
        for zone in ZONES:
            allowed, explanation = enforcer.enforce_ex(subject, category, purpose, zone)
            if allowed:
                return Decision(zone, self._rules[explanation[4]], self.version)
        return Decision("black", None, self.version)

    def prepare(self, requester: str) -> None:
        """Build the requester's enforcer now (milliseconds per thousand of its rules), e.g. in a worker thread."""
        self._enforcer_for(f"agency:{requester}")

    def _enforcer_for(self, subject: str) -> casbin.Enforcer:
        with self._building:
            enforcer = self._by_requester.get(subject)
            if enforcer is None:
                names = {subject, *self._roles.get_implicit_roles_for_user(subject)}
                rules = tuple(rule for rule in self._rule_set.rules if rule.requester in names)
                enforcer = _enforcer(RuleSet(self.version, rules, self._rule_set.groups))
                self._by_requester[subject] = enforcer
            return enforcer


def _enforcer(rule_set: RuleSet) -> casbin.Enforcer:
    return casbin.Enforcer(_model_path("sharing.conf"), _RuleSetAdapter(rule_set))


MAX_REASON = 1000  # characters of the reason every edit of the rules records


class PolicyEditRefused(Exception):
    """An edit that cannot be made as asked; `why` says how: it names something `unknown`, it `conflicts` with
    the current rules (or the change is no longer pending), it is `invalid`, or it is the approval of one's `own`
    change."""

    def __init__(self, why: Literal["unknown", "conflicts", "invalid", "own"], detail: str) -> None:
        super().__init__(detail)
        self.why = why


Published = int | Pending  # the version an edit published, or the change it is held as (four eyes)


def _load_asks(rules: list[Rule], groups: list[Group]) -> dict[str, Any]:
    return {"rules": [rule.as_json() for rule in rules], "groups": [list(group) for group in groups]}


def _loaded(current: RuleSet, asks: dict[str, Any], *, merge: bool) -> PolicyFile:
    """The rule set a rule file's rules and groupings (`asks`) make of `current`: merged into it, or replacing it."""
    rules = [stored_rule(rule) for rule in asks["rules"]]
    groups: list[Group] = [(kind, member, group) for kind, member, group in asks["groups"]]
    if merge:
        return merged(PolicyFile(list(current.rules), list(current.groups)), rules, groups)
    return PolicyFile(distinct_ids(rules), unique_groups(groups))


def _changes(current: RuleSet, target: PolicyFile) -> dict[str, list[dict[str, Any]]]:
    return changes(PolicyFile(list(current.rules), list(current.groups)), target)


def _not_pending(error: ChangeNotPending) -> PolicyEditRefused:
    if error.status is None:
        return PolicyEditRefused("unknown", f"no change {error.change_id!r}")
    return PolicyEditRefused("conflicts", f"change {error.change_id!r} is {error.status}, not pending")


class PolicyService:
    """The published rules, their decisions, and every edit of them. With `approvals` = 2 (four eyes) an edit is
    held as a pending change until another administrator approves it (policies/changes.py)."""

    def __init__(
        self,
        store: PolicyStore,
        category_exists: Exists,
        purpose_exists: Exists,
        max_decisions: int = 65_536,
        approvals: int = 1,
    ) -> None:
        self._store = store
        self._approvals = approvals
        self._category_exists = category_exists
        self._purpose_exists = purpose_exists
        self._policy: SharingPolicy | None = None
        self._loading = asyncio.Lock()
        # Kept until the policy version changes (no time to live): refresh() clears them.
        self._decisions: ReadThrough[tuple[str, str, str], Decision] = ReadThrough(
            CacheSettings(ttl_s=math.inf, max_entries=max_decisions)
        )

    @property
    def version(self) -> int:
        return 0 if self._policy is None else self._policy.version

    def published(self) -> Plan[int]:
        """The read of the published version, for an exchange to run with its other reads (hand it to `follow`)."""
        return PUBLISHED

    async def follow(self, version: int) -> bool:
        """Take the published version an exchange read with its other reads: load the rule set if it is newer than
        the one decided with (an edit made on any hub process counts from the next exchange); whether it was."""
        if version <= self.version:
            return False
        async with self._loading:  # one load for the exchanges that saw the same edit
            return version > self.version and await self.refresh()

    async def refresh(self) -> bool:
        """Load the published rule set if its version changed; True when it did."""
        if self._policy is not None and await self._store.version() == self._policy.version:
            return False
        rule_set = await self._store.current()
        # Building the enforcer scans every rule: keep it off the event loop.
        self._policy = await asyncio.to_thread(SharingPolicy, rule_set)
        self._decisions.clear()
        return True

    async def decide(self, requester: str, category: str, purpose: str) -> Decision:
        return await self._decisions.get(
            (requester, category, purpose), partial(self._evaluate, requester, category, purpose)
        )

    async def _evaluate(self, requester: str, category: str, purpose: str) -> Decision:
        if self._policy is None:
            await self.refresh()
        policy = self._policy
        assert policy is not None  # noqa: S101 -- refresh() sets it or raises; for the type checker
        # Building the requester's enforcer reads its rules: off the loop. The evaluation itself stays on the
        # loop: Casbin parses its matcher with `ast.parse` on every call, which CPython 3.11 cannot run in two
        # threads at once (the operator gate evaluates on the loop too), and it scans only this requester's rules.
        await asyncio.to_thread(policy.prepare, requester)
        return policy.decide(requester, category, purpose)

    async def rules(self) -> RuleSet:
        return await self._store.current()

    async def replace(
        self,
        rules: list[Rule],
        groups: list[tuple[str, str, str]],
        actor: str,
        reason: str,
        at: datetime,
        expected: int | None = None,
    ) -> Published:
        """Publish `rules` and `groups` as the whole rule set; with `expected`, only while the rules are still at
        that version."""
        current = await self._current(expected)
        asks = _load_asks(rules, groups)
        return await self._edit("replace", asks, current, actor, reason, at)

    async def add(self, rule: Rule, actor: str, reason: str, at: datetime) -> tuple[Published, Rule]:
        """Publish the rule set with `rule` added; the new version and the rule, with the id the hub gave it
        when it came without one (UNASSIGNED)."""
        current = await self._store.current()
        if rule.id == UNASSIGNED:
            rule = dataclasses.replace(rule, id=fresh_rule_id({existing.id for existing in current.rules}))
        return await self._edit("add", {"rule": rule.as_json()}, current, actor, reason, at), rule

    async def planned(self, rules: list[Rule], groups: list[Group], *, merge: bool) -> tuple[RuleSet, PolicyFile]:
        """The current rule set, and what it becomes when `rules` and `groups` are merged into it (`merge`: rules
        added or replaced by id, groupings added, nothing removed) or replace it."""
        current = await self._store.current()
        return current, _loaded(current, _load_asks(rules, groups), merge=merge)

    async def load(
        self,
        rules: list[Rule],
        groups: list[Group],
        actor: str,
        reason: str,
        at: datetime,
        *,
        merge: bool = True,
        expected: int | None = None,
    ) -> Published | None:
        """Publish what a rule file asks (see `planned`) as one version; None when it changes nothing. With
        `expected`, refuse unless the rules are still at that version (the one a diff was shown of)."""
        current = await self._current(expected)
        asks = _load_asks(rules, groups)
        if unchanged(_changes(current, _loaded(current, asks, merge=merge))):
            return None
        return await self._edit("load" if merge else "replace", asks, current, actor, reason, at)

    async def remove(self, rule_id: str, actor: str, reason: str, at: datetime) -> Published:
        return await self._edit("remove", {"rule": rule_id}, await self._store.current(), actor, reason, at)

    async def rollback(self, number: int, actor: str, reason: str, at: datetime) -> Published:
        """Publish the rules and groups of an earlier version as a new version (history is never rewritten)."""
        return await self._edit("rollback", {"version": number}, await self._store.current(), actor, reason, at)

    async def accept(self, proposal_id: str, actor: str, reason: str, at: datetime) -> tuple[Published, Rule]:
        """Make a reviewer's proposal a standing rule; the version (or the change held for approval) and the rule."""
        current = await self._store.current()
        proposal = await self._open_proposal(proposal_id)
        return await self._edit("accept", {"proposal": proposal_id}, current, actor, reason, at), proposal.rule

    async def _current(self, expected: int | None) -> RuleSet:
        current = await self._store.current()
        if expected is not None and current.version != expected:
            raise PolicyEditRefused(
                "conflicts", f"the rules changed meanwhile: version {current.version}, not {expected}"
            )
        return current

    async def _edit(
        self,
        kind: str,
        asks: dict[str, Any],
        current: RuleSet,
        actor: str,
        reason: str,
        at: datetime,
    ) -> Published:
        """Publish the edit now, or with four eyes hold it for a second administrator: it is checked first either
        way. A hub's first rule set (version 0: no administrator has published anything yet) is published now."""
        target, rollback_of = await self._target(kind, asks, current)
        needed = max(self._approvals, await self._store.approvals())  # the stricter of this process and the hubs
        if needed == 1 or current.version == 0:
            return await self._publish(kind, asks, target, actor, reason, at, current.version, rollback_of)
        change = Change(f"c-{secrets.token_hex(8)}", kind, asks, current.version, actor, reason, at)
        await self._store.hold(change)
        return Pending(change.id, approvals=1, needed=needed)

    async def declare_approvals(self, at: datetime) -> None:
        """A serving hub's setting, recorded for every front end on its store (the command line included)."""
        await self._store.declare_approvals(self._approvals, at)

    async def _publish(
        self,
        kind: str,
        asks: dict[str, Any],
        target: PolicyFile,
        actor: str,
        reason: str,
        at: datetime,
        expected: int | None,
        rollback_of: int | None,
        approval: Approval | None = None,
    ) -> int:
        try:
            version = await self._store.publish(
                target.rules, target.groups, actor, reason, at, expected, rollback_of, approval
            )
        except PolicyConflict as error:
            raise PolicyEditRefused("conflicts", str(error)) from error
        except ChangeNotPending as error:
            raise _not_pending(error) from error
        if kind == "accept":
            await self._store.accept(asks["proposal"], version)
        await self.refresh()
        return version

    async def _target(self, kind: str, asks: dict[str, Any], current: RuleSet) -> tuple[PolicyFile, int | None]:
        """The rule set an edit makes of `current`, and for a rollback the version it publishes again; refused
        (PolicyEditRefused) when it cannot apply to `current`."""
        rules, groups = list(current.rules), list(current.groups)
        if kind == "add":
            rule = stored_rule(asks["rule"])
            if rule.id in {existing.id for existing in rules}:
                raise PolicyEditRefused("conflicts", f"a rule {rule.id!r} exists; remove it first or choose another id")
            await self._check_names(rule, current)
            return PolicyFile([*rules, rule], groups), None
        if kind == "remove":
            kept = [rule for rule in rules if rule.id != asks["rule"]]
            if len(kept) == len(rules):
                raise PolicyEditRefused("unknown", f"no rule {asks['rule']!r}")
            return PolicyFile(kept, groups), None
        if kind == "rollback":
            earlier = await self._store.version_at(asks["version"])
            if earlier is None:
                raise PolicyEditRefused("unknown", f"no policy version {asks['version']}")
            return PolicyFile(list(earlier.rules), list(earlier.groups)), asks["version"]
        if kind in ("load", "replace"):
            return _loaded(current, asks, merge=kind == "load"), None
        # accept: the standing rule replaces any rule asking exactly the same question (typically the grey rule
        # that sent it to review); broader rules stay, and precedence still applies to them.
        rule = (await self._open_proposal(asks["proposal"])).rule
        question = (rule.requester, rule.category, rule.purpose)
        kept = [r for r in rules if (r.requester, r.category, r.purpose) != question and r.id != rule.id]
        return PolicyFile([*kept, rule], groups), None

    async def _open_proposal(self, proposal_id: str) -> Proposal:
        proposal = await self._store.proposal(proposal_id)
        if proposal is None:
            raise PolicyEditRefused("unknown", f"no proposal {proposal_id!r}")
        if proposal.status != "open":
            raise PolicyEditRefused("conflicts", f"proposal {proposal_id!r} is {proposal.status}")
        if proposal.rule.ground == GROUND_NOT_RECORDED:  # a rule made now needs its ground, whenever proposed
            raise PolicyEditRefused(
                "invalid", f"proposal {proposal_id!r} names no ground: propose the rule again with one"
            )
        return proposal

    async def changes(self, status: str | None) -> list[Change]:
        return await self._store.changes(status)

    async def approve(self, change_id: str, actor: str, reason: str, at: datetime) -> tuple[int, Change]:
        """Publish a held change as its proposer asked it, approved by `actor`, another administrator. A change
        proposed against an earlier version is applied to the current rules when it still applies to them (an
        add of a still-free id, a remove of a rule that still exists, a merge, an accepted proposal still open);
        a rollback or a replacement only while the rules are still at the version it was proposed against."""
        change = await self._pending(change_id)
        if change.proposed_by == actor:
            raise PolicyEditRefused("own", f"change {change_id!r} is yours: another administrator approves it")
        current = await self._store.current()
        target, rollback_of = await self._applied(change, current)
        version = await self._publish(
            change.kind,
            change.asks,
            target,
            change.proposed_by,
            change.reason,
            at,
            current.version,
            rollback_of,
            Approval(change.id, actor, reason),
        )
        return version, await self._decided(change_id)

    async def reject(self, change_id: str, actor: str, reason: str, at: datetime) -> Change:
        """Close a held change without publishing anything (its proposer may withdraw it this way too)."""
        await self._pending(change_id)
        try:
            return await self._store.reject(change_id, actor, reason, at)
        except ChangeNotPending as error:
            raise _not_pending(error) from error

    async def dry_run(self, change_id: str, questions: list[Question]) -> dict[str, Any]:
        """How the rules a pending change would publish now decide `questions` (the audit log's recent exchanges):
        refused as approving it would be when it no longer applies."""
        change = await self._pending(change_id)
        current = await self._store.current()
        target, _ = await self._applied(change, current)
        proposed = RuleSet(current.version + 1, tuple(target.rules), tuple(target.groups))
        policy = await asyncio.to_thread(SharingPolicy, proposed)
        for requester in {question.requester for question in questions}:
            await asyncio.to_thread(policy.prepare, requester)
        # Decided on the loop, as `_evaluate` does: Casbin's matcher parsing is not safe in two threads at once.
        return dry_run(lambda requester, category, purpose: policy.decide(requester, category, purpose).zone, questions)

    async def _applied(self, change: Change, current: RuleSet) -> tuple[PolicyFile, int | None]:
        """What a held change makes of the current rules, refused (`conflicts`) when it no longer applies to them."""
        if change.kind in STRICT and current.version != change.against:
            raise PolicyEditRefused(
                "conflicts",
                f"change {change.id!r} was proposed against version {change.against} and the rules are at version "
                f"{current.version}: reject it and propose it again",
            )
        try:
            target, rollback_of = await self._target(change.kind, change.asks, current)
        except PolicyEditRefused as refused:
            raise PolicyEditRefused("conflicts", f"change {change.id!r} no longer applies: {refused}") from refused
        if change.kind == "load" and unchanged(_changes(current, target)):
            raise PolicyEditRefused("conflicts", f"change {change.id!r} would change nothing now: reject it")
        return target, rollback_of

    async def _pending(self, change_id: str) -> Change:
        change = await self._store.change(change_id)
        if change is None or change.status != "pending":
            raise _not_pending(ChangeNotPending(change_id, None if change is None else change.status))
        return change

    async def _decided(self, change_id: str) -> Change:
        change = await self._store.change(change_id)
        assert change is not None  # noqa: S101 -- it was just decided; for the type checker
        return change

    async def history(self) -> list[dict[str, Any]]:
        """Every version with who, when, why, what it changed against the one before (rules and groupings), and
        for a rollback the version it published again."""
        versions = await self._store.versions()
        previous = PolicyFile([], [])
        entries = []
        for version in versions:
            now = PolicyFile(list(version.rules), list(version.groups))
            entries.append(
                {
                    "version": version.version,
                    "created_at": version.created_at.isoformat(),
                    "actor": version.actor,
                    "reason": version.reason,
                    "rollback_of": version.rollback_of,
                    "diff": changes(previous, now),
                    # Only a version a second administrator approved says so: history reads as before without.
                    **(
                        {}
                        if version.approved_by is None
                        else {"approved_by": version.approved_by, "approval_reason": version.approval_reason}
                    ),
                }
            )
            previous = now
        return entries

    async def propose(self, proposal: Proposal) -> None:
        await self._check_names(proposal.rule, await self._store.current())
        await self._store.propose(proposal)

    async def proposals(self, status: str) -> list[Proposal]:
        return await self._store.proposals(status)

    async def _check_names(self, rule: Rule, current: RuleSet) -> None:
        category_groups = {group for kind, _, group in current.groups if kind == "g2"}
        if (
            rule.category != "*"
            and rule.category not in category_groups
            and not await self._category_exists(rule.category)
        ):
            raise PolicyEditRefused("invalid", f"category {rule.category!r} is neither registered nor a category group")
        if rule.purpose != "*" and not await self._purpose_exists(rule.purpose):
            raise PolicyEditRefused("invalid", f"purpose {rule.purpose!r} is not registered")


class _RuleFiles(Adapter):  # type: ignore[misc]
    """Feeds Casbin the rule lines of several files of this package, in order."""

    def __init__(self, *names: str) -> None:
        self._names = names

    def load_policy(self, model: Any) -> None:
        for name in self._names:
            for line in Path(_model_path(name)).read_text().splitlines():
                load_policy_line(line.strip(), model)


class OperatorGate:
    """Which role may call which endpoint (policies/operator_rules.csv) or use which console page
    (policies/console_rules.csv), through policies/operators.conf."""

    def __init__(self) -> None:
        rules = _RuleFiles("operator_rules.csv", "console_rules.csv")
        self._enforcer = casbin.Enforcer(_model_path("operators.conf"), rules)
        # The rule files do not change while the hub runs: a decision, once made, stands (Casbin parses its
        # matcher on every call). Bounded, as paths carry ids and hostile requests any path at all.
        self._decisions: LRUCache[tuple[str, str, str], bool] = LRUCache(4096)

    def allows(self, role: str, path: str, method: str) -> bool:
        question = (role, path, method)
        decision = self._decisions.get(question)
        if decision is None:
            decision = self._decisions[question] = bool(self._enforcer.enforce(role, path, method))
        return decision
