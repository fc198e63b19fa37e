"""Sharing rules: listing and explaining (admin; evaluate also privacy_officer)."""

from __future__ import annotations

from aiohttp import web

from broker import errors
from broker.appkeys import HUB
from broker.http.replies import json_body, reply


async def policies(request: web.Request) -> web.Response:
    rule_set = await request.app[HUB].policies.rules()
    return reply({"version": rule_set.version, "rules": [rule.as_json() for rule in rule_set.rules]})


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


ROUTES = [web.get("/v1/policies", policies), web.post("/v1/policies/evaluate", evaluate)]
