"""Administrators' pages: sharing rules (filtered list, add and remove with a reason, the dry-run explain
form, the version history with its diffs and rollback), agencies and their keys (register, rotate, revoke,
suspend), and the notification dead-letter list with replay. Each calls the services the v1 API calls.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from urllib.parse import quote

from aiohttp import web

from broker.appkeys import AUDIT, HUB, PRINCIPAL
from broker.base import errors
from broker.console.pages import form, page, query_filled, redirect, text
from directory.keys import parse_key_id, parse_registration, parse_revocation
from directory.names import NAME
from policies.rules import ZONES, Rule, parse_rule
from policies.service import MAX_REASON

RULE_FILTERS = ("requester", "category", "purpose", "zone")
MAX_NAME, MAX_URL = 200, 500
OVERLAPS = {"0": "at once", "3600": "in 1 hour", "86400": "in 24 hours", "604800": "in 7 days"}


def matching(rules: tuple[Rule, ...], filters: Mapping[str, str]) -> list[Rule]:
    """Rules whose requester, category and purpose contain the filters' text, and whose zone is the one asked."""
    found = []
    for rule in rules:
        values = {"requester": rule.requester, "category": rule.category, "purpose": rule.purpose}
        if all(filters[name].lower() in values[name].lower() for name in values if name in filters) and (
            "zone" not in filters or rule.zone == filters["zone"]
        ):
            found.append(rule)
    return found


def rule_from_form(fields: Mapping[str, str]) -> Rule:
    """A rule from the add form: `fields` is a comma-separated list (empty: the whole answer)."""
    listed = [name.strip() for name in fields.get("fields", "").split(",") if name.strip()]
    document = {
        "id": fields.get("id", "").strip(),
        "requester": fields.get("requester", "").strip(),
        "category": fields.get("category", "").strip(),
        "purpose": fields.get("purpose", "").strip(),
        "zone": fields.get("zone", ""),
        "consent": fields.get("consent") == "on",
        "fields": listed or None,
        "emergency": fields.get("emergency") == "on",
    }
    return parse_rule(document)


async def rules(request: web.Request) -> web.Response:
    rule_set = await request.config_dict[HUB].policies.rules()
    filters = {name: value for name, value in query_filled(dict(request.query)).items() if name in RULE_FILTERS}
    return page(
        request,
        "rules.html",
        {
            "version": rule_set.version,
            "rules": matching(rule_set.rules, filters),
            "total": len(rule_set.rules),
            "groups": rule_set.groups,
            "filters": filters,
            "zones": ZONES,
        },
    )


async def add_rule(request: web.Request) -> web.Response:
    hub, entry, fields = request.config_dict[HUB], request[AUDIT], await form(request)
    rule = rule_from_form(fields)
    reason = text(fields, "reason", "the reason for the change", most=MAX_REASON)
    entry.rule_id = rule.id
    entry.policy_version = await hub.policies.add(rule, request[PRINCIPAL].id, reason, datetime.now(UTC))
    return redirect("/console/rules?notice=rule-added")


async def remove_rule(request: web.Request) -> web.Response:
    hub, entry, fields = request.config_dict[HUB], request[AUDIT], await form(request)
    reason = text(fields, "reason", "the reason for the change", most=MAX_REASON)
    entry.rule_id = request.match_info["id"]
    entry.policy_version = await hub.policies.remove(entry.rule_id, request[PRINCIPAL].id, reason, datetime.now(UTC))
    return redirect("/console/rules?notice=rule-removed")


async def explain(request: web.Request) -> web.Response:
    """The dry run: which zone the current rules give a question, and the rule that decides it."""
    hub = request.config_dict[HUB]
    asked = {name: request.query.get(name, "").strip() for name in ("requester", "category", "purpose")}
    decision = None
    if all(asked.values()):
        if not all(NAME.fullmatch(value) for value in asked.values()):
            raise errors.Invalid("requester, category and purpose are names of [a-z0-9-]")
        decision = await hub.policies.decide(asked["requester"], asked["category"], asked["purpose"])
    rule_set = await hub.policies.rules()
    return page(
        request,
        "explain.html",
        {
            "asked": asked,
            "decision": decision,
            "agencies": await hub.directory.agencies(),
            "purposes": await hub.directory.purposes(),
            "categories": sorted({rule.category for rule in rule_set.rules if rule.category != "*"}),
        },
    )


async def history(request: web.Request) -> web.Response:
    versions = await request.config_dict[HUB].policies.history()
    return page(request, "history.html", {"versions": list(reversed(versions))})


async def rollback(request: web.Request) -> web.Response:
    hub, entry, fields = request.config_dict[HUB], request[AUDIT], await form(request)
    number = fields.get("version", "")
    if not number.isdigit() or int(number) < 1:
        raise errors.Invalid("version must be a policy version number")
    reason = text(fields, "reason", "the reason for the rollback", most=MAX_REASON)
    entry.policy_version = await hub.policies.rollback(int(number), request[PRINCIPAL].id, reason, datetime.now(UTC))
    return redirect("/console/rules/history?notice=rolled-back")


async def agencies(request: web.Request) -> web.Response:
    directory, now = request.config_dict[HUB].directory, datetime.now(UTC)
    listed = [
        (agency, [key.as_json(now) for key in await directory.keys_of(agency.id)])
        for agency in await directory.agencies()
    ]
    return page(request, "agencies.html", {"agencies": listed, "overlaps": OVERLAPS})


async def register_agency(request: web.Request) -> web.Response:
    """A new agency with its first key; its roles and the rules that let it ask anything are rule edits."""
    hub, entry, fields, now = request.config_dict[HUB], request[AUDIT], await form(request), datetime.now(UTC)
    agency_id = text(fields, "id", "the agency id", most=63)
    if not NAME.fullmatch(agency_id):
        raise errors.Invalid("an agency id is 2 to 63 characters of [a-z0-9-], starting with a letter or digit")
    name = text(fields, "name", "the agency's name", most=MAX_NAME)
    adapter_url = text(fields, "adapter_url", "the adapter URL", most=MAX_URL)
    if not adapter_url.startswith(("http://", "https://")):
        raise errors.Invalid("the adapter URL starts with http:// or https://")
    entry.holder = agency_id
    registration = parse_registration(
        {"key_id": fields.get("key_id", "").strip(), "public_key_pem": fields.get("public_key_pem", "").strip() + "\n"},
        now,
    )
    if await hub.directory.agency(agency_id) is not None:
        raise errors.Conflict(f"an agency {agency_id!r} is already registered")
    if await hub.directory.key(registration.key_id) is not None:
        raise errors.Conflict(f"key id {registration.key_id!r} is already registered")
    await hub.directory.load({"agencies": [{"id": agency_id, "name": name, "adapter_url": adapter_url}]}, now)
    await hub.directory.add_key("agency", agency_id, registration, now)
    return redirect(f"/console/agencies?notice=agency-registered#{quote(agency_id)}")


async def _agency(request: web.Request) -> str:
    agency_id = request.match_info["id"]
    request[AUDIT].holder = agency_id if NAME.fullmatch(agency_id) else None
    if await request.config_dict[HUB].directory.agency(agency_id) is None:
        raise errors.NotFound(f"no agency {agency_id!r}")
    return agency_id


async def agency_status(request: web.Request) -> web.Response:
    agency_id, fields = await _agency(request), await form(request)
    status = fields.get("status")
    if status not in ("active", "suspended"):
        raise errors.Invalid("an agency is active or suspended")
    await request.config_dict[HUB].directory.set_agency_status(agency_id, status)
    return redirect(f"/console/agencies?notice=agency-{status}#{quote(agency_id)}")


async def rotate_key(request: web.Request) -> web.Response:
    """A new key for the agency; its other keys stop working after the overlap chosen."""
    hub, now = request.config_dict[HUB], datetime.now(UTC)
    agency_id, fields = await _agency(request), await form(request)
    overlap = fields.get("overlap_s", "")
    if overlap not in OVERLAPS:
        raise errors.Invalid("choose when the old keys stop working")
    registration = parse_registration(
        {
            "key_id": fields.get("key_id", "").strip(),
            "public_key_pem": fields.get("public_key_pem", "").strip() + "\n",
            "overlap_s": int(overlap),
        },
        now,
    )
    await hub.directory.add_key("agency", agency_id, registration, now)
    return redirect(f"/console/agencies?notice=key-rotated#{quote(agency_id)}")


async def revoke_key(request: web.Request) -> web.Response:
    hub, fields, now = request.config_dict[HUB], await form(request), datetime.now(UTC)
    agency_id = fields.get("agency", "")
    request[AUDIT].holder = agency_id if NAME.fullmatch(agency_id) else None
    key_id, reason = parse_key_id(request.match_info["id"]), parse_revocation({"reason": fields.get("reason", "")})
    revoked = await hub.directory.revoke_key(agency_id, key_id, request[PRINCIPAL].id, reason, now)
    if revoked is None:
        raise errors.NotFound(f"agency {agency_id!r} has no key {key_id!r}")
    return redirect(f"/console/agencies?notice=key-revoked#{quote(agency_id)}")


async def dead_letters(request: web.Request) -> web.Response:
    letters = await request.config_dict[HUB].notifications.outbox.dead_letters()
    return page(request, "dead_letters.html", {"letters": letters})


async def replay(request: web.Request) -> web.Response:
    hub, fields = request.config_dict[HUB], await form(request)
    chosen = fields.getall("delivery", [])
    if not all(item.isdigit() for item in chosen):
        raise errors.Invalid("deliveries are named by their numbers")
    if not chosen and fields.get("all") != "on":
        raise errors.Invalid("choose the dead letters to replay, or replay them all")
    await hub.notifications.outbox.replay(None if not chosen else [int(item) for item in chosen], datetime.now(UTC))
    hub.notifications.wake.set()
    return redirect("/console/dead-letters?notice=replayed")


ROUTES = [
    web.get("/rules", rules, name="rules"),
    web.post("/rules", add_rule, name="rule_add"),
    web.post("/rules/{id}/remove", remove_rule, name="rule_remove"),
    web.get("/rules/explain", explain, name="explain"),
    web.get("/rules/history", history, name="rule_history"),
    web.post("/rules/rollback", rollback, name="rule_rollback"),
    web.get("/agencies", agencies, name="agencies"),
    web.post("/agencies", register_agency, name="agency_register"),
    web.post("/agencies/{id}/status", agency_status, name="agency_status"),
    web.post("/agencies/{id}/keys", rotate_key, name="key_rotate"),
    web.post("/keys/{id}/revoke", revoke_key, name="key_revoke"),
    web.get("/dead-letters", dead_letters, name="dead_letters"),
    web.post("/dead-letters/replay", replay, name="dead_letter_replay"),
]
