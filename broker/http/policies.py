"""Sharing rules: list, add (the hub names a rule that comes without an id), remove, explain, history (rules and
groupings, rollbacks marked), rollback, and accepting reviewers' proposals (admin; explain also privacy_officer).
Every edit publishes a new policy version and is audited like an exchange; with four eyes (`policy_approvals =
2`) it is held as a change instead (202), which another administrator approves or rejects, after a dry run
against the exchanges of the audit log if they wish.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web

from broker.appkeys import AUDIT, HUB, PRINCIPAL
from broker.audit.log import AuditEntry, clipped, edit_recorded
from broker.audit.queries import rfc3339
from broker.base import errors
from broker.http.replies import json_body, record_id, reply
from policies.changes import STATUSES, Pending
from policies.rules import RULE_ID, parse_rule
from policies.service import MAX_REASON

MAX_VERSION = 2**31 - 1  # policy versions are 32-bit integers in the store
DRY_RUN_SINCE = timedelta(days=7)  # the exchanges a change's dry run re-decides, unless it says since when


def reason_of(document: dict[str, Any], allowed: set[str]) -> str:
    """The required reason of an edit; refuses fields outside `allowed`."""
    unknown = sorted(set(document) - allowed - {"reason"})
    if unknown:
        raise errors.Invalid(f"unknown fields: {', '.join(unknown)}")
    reason = document.get("reason")
    if not isinstance(reason, str) or not reason.strip() or len(reason) > MAX_REASON:
        raise errors.Invalid(f"every policy edit needs its reason, at most {MAX_REASON} characters")
    return reason


def held(entry: AuditEntry, pending: Pending, reason: str) -> web.Response:
    """The answer to an edit held for another administrator's approval; its record names the change and why."""
    edit_recorded(entry, pending, reason)
    return reply(pending.as_json(), 202)


async def policies(request: web.Request) -> web.Response:
    rule_set = await request.app[HUB].policies.rules()
    return reply(
        {
            "version": rule_set.version,
            "rules": [rule.as_json() for rule in rule_set.rules],
            "groups": [{"kind": kind, "member": member, "group": group} for kind, member, group in rule_set.groups],
        }
    )


async def add_rule(request: web.Request) -> web.Response:
    hub, entry, document = request.app[HUB], request[AUDIT], json_body(request)
    reason = reason_of(document, {"rule"})
    rule = parse_rule(document.get("rule"), new=True)  # without an id, the hub gives it one
    entry.rule_id = rule.id or None
    version, rule = await hub.policies.add(rule, request[PRINCIPAL].id, reason, datetime.now(UTC))
    entry.rule_id = rule.id
    if isinstance(version, Pending):
        return held(entry, version, reason)
    entry.policy_version = version
    return reply({"version": version, "rule": rule.as_json()}, 201)


async def remove_rule(request: web.Request) -> web.Response:
    hub, entry = request.app[HUB], request[AUDIT]
    reason = reason_of(json_body(request), set())
    entry.rule_id = request.match_info["id"]
    if not RULE_ID.fullmatch(entry.rule_id):
        entry.rule_id = None
        raise errors.NotFound("no rule has this id")
    version = await hub.policies.remove(entry.rule_id, request[PRINCIPAL].id, reason, datetime.now(UTC))
    if isinstance(version, Pending):
        return held(entry, version, reason)
    entry.policy_version = version
    return reply({"version": version})


async def evaluate(request: web.Request) -> web.Response:
    document = json_body(request)
    names = ("requester", "category", "purpose")
    if set(document) != set(names) or not all(isinstance(document[name], str) for name in names):
        raise errors.Invalid("evaluate takes exactly requester, category and purpose, as strings")
    decision = await request.app[HUB].policies.decide(*(document[name] for name in names))
    return reply(
        {
            "zone": decision.zone,
            "consent": decision.consent,
            "fields": None if decision.fields is None else list(decision.fields),
            "rules": [] if decision.rule is None else [decision.rule.id],
            "version": decision.version,
        }
    )


async def history(request: web.Request) -> web.Response:
    return reply({"versions": await request.app[HUB].policies.history()})


async def rollback(request: web.Request) -> web.Response:
    hub, entry, document = request.app[HUB], request[AUDIT], json_body(request)
    reason = reason_of(document, {"version"})
    number = document.get("version")
    if type(number) is not int or not 1 <= number <= MAX_VERSION:
        raise errors.Invalid("version must be a policy version number")
    version = await hub.policies.rollback(number, request[PRINCIPAL].id, reason, datetime.now(UTC))
    if isinstance(version, Pending):
        return held(entry, version, reason)
    entry.policy_version = version
    return reply({"version": version, "restored": number})


async def proposals(request: web.Request) -> web.Response:
    status = request.query.get("status", "open")
    if status not in ("open", "accepted"):
        raise errors.Invalid("status is open or accepted")
    found = await request.app[HUB].policies.proposals(status)
    return reply({"proposals": [proposal.as_json() for proposal in found]})


async def accept_proposal(request: web.Request) -> web.Response:
    hub, entry = request.app[HUB], request[AUDIT]
    reason = reason_of(json_body(request), set())
    version, rule = await hub.policies.accept(
        request.match_info["id"], request[PRINCIPAL].id, reason, datetime.now(UTC)
    )
    entry.rule_id = rule.id
    if isinstance(version, Pending):
        return held(entry, version, reason)
    entry.policy_version = version
    return reply({"version": version, "rule": rule.as_json()}, 201)


async def changes(request: web.Request) -> web.Response:
    status = request.query.get("status", "pending")
    if status not in STATUSES:
        raise errors.Invalid(f"status is one of {', '.join(STATUSES)}")
    found = await request.app[HUB].policies.changes(status)
    return reply({"changes": [change.as_json() for change in found]})


async def approve_change(request: web.Request) -> web.Response:
    hub, entry = request.app[HUB], request[AUDIT]
    reason = reason_of(json_body(request), set())
    change_id = record_id(request, errors.NotFound)
    version, change = await hub.policies.approve(change_id, request[PRINCIPAL].id, reason, datetime.now(UTC))
    entry.exchange, entry.policy_version, entry.reason = change.id, version, clipped(reason)
    return reply({"version": version, "change": change.as_json()})


async def reject_change(request: web.Request) -> web.Response:
    hub, entry = request.app[HUB], request[AUDIT]
    reason = reason_of(json_body(request), set())
    change_id = record_id(request, errors.NotFound)
    change = await hub.policies.reject(change_id, request[PRINCIPAL].id, reason, datetime.now(UTC))
    entry.exchange, entry.reason = change.id, clipped(reason)
    return reply({"change": change.as_json()})


async def evaluate_change(request: web.Request) -> web.Response:
    """The dry run: the exchanges of the audit log since `since` (by default the last 7 days) re-decided under the
    rules the change would publish."""
    hub, document = request.app[HUB], json_body(request)
    since = document.get("since")
    if set(document) - {"since"} or not isinstance(since, str | None):
        raise errors.Invalid("a dry run takes only `since`, an RFC 3339 date-time")
    change_id = record_id(request, errors.NotFound)
    questions = await hub.audit.decided(rfc3339(since, "since") or datetime.now(UTC) - DRY_RUN_SINCE)
    return reply(await hub.policies.dry_run(change_id, questions))


ROUTES = [
    web.get("/v1/policies", policies),
    web.post("/v1/policies", add_rule),
    web.delete("/v1/policies/{id}", remove_rule),
    web.post("/v1/policies/evaluate", evaluate),
    web.get("/v1/policies/history", history),
    web.post("/v1/policies/rollback", rollback),
    web.get("/v1/policies/proposals", proposals),
    web.post("/v1/policies/proposals/{id}/accept", accept_proposal),
    web.get("/v1/policies/changes", changes),
    web.post("/v1/policies/changes/{id}/approve", approve_change),
    web.post("/v1/policies/changes/{id}/reject", reject_change),
    web.post("/v1/policies/changes/{id}/evaluate", evaluate_change),
]
