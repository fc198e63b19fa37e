"""Sharing rules: list, add (the hub names a rule that comes without an id), remove, explain, history (rules and
groupings, rollbacks marked), rollback, and accepting reviewers' proposals (admin; explain also privacy_officer).
Every edit publishes a new policy version and is audited like an exchange.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from broker.appkeys import AUDIT, HUB, PRINCIPAL
from broker.base import errors
from broker.http.replies import json_body, reply
from policies.rules import RULE_ID, parse_rule
from policies.service import MAX_REASON

MAX_VERSION = 2**31 - 1  # policy versions are 32-bit integers in the store


def reason_of(document: dict[str, Any], allowed: set[str]) -> str:
    """The required reason of an edit; refuses fields outside `allowed`."""
    unknown = sorted(set(document) - allowed - {"reason"})
    if unknown:
        raise errors.Invalid(f"unknown fields: {', '.join(unknown)}")
    reason = document.get("reason")
    if not isinstance(reason, str) or not reason.strip() or len(reason) > MAX_REASON:
        raise errors.Invalid(f"every policy edit needs its reason, at most {MAX_REASON} characters")
    return reason


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
    entry.rule_id, entry.policy_version = rule.id, version
    return reply({"version": version, "rule": rule.as_json()}, 201)


async def remove_rule(request: web.Request) -> web.Response:
    hub, entry = request.app[HUB], request[AUDIT]
    reason = reason_of(json_body(request), set())
    entry.rule_id = request.match_info["id"]
    if not RULE_ID.fullmatch(entry.rule_id):
        entry.rule_id = None
        raise errors.NotFound("no rule has this id")
    version = await hub.policies.remove(entry.rule_id, request[PRINCIPAL].id, reason, datetime.now(UTC))
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
    entry.policy_version = version = await hub.policies.rollback(
        number, request[PRINCIPAL].id, reason, datetime.now(UTC)
    )
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
    entry.rule_id, entry.policy_version = rule.id, version
    return reply({"version": version, "rule": rule.as_json()}, 201)


ROUTES = [
    web.get("/v1/policies", policies),
    web.post("/v1/policies", add_rule),
    web.delete("/v1/policies/{id}", remove_rule),
    web.post("/v1/policies/evaluate", evaluate),
    web.get("/v1/policies/history", history),
    web.post("/v1/policies/rollback", rollback),
    web.get("/v1/policies/proposals", proposals),
    web.post("/v1/policies/proposals/{id}/accept", accept_proposal),
]
