"""Administrators' pages: sharing rules (filtered list, add and remove with a reason, the dry-run explain
form, the version history with its diffs of rules and groupings and rollback), the registry (agencies: register,
rename, move the adapter, suspend, resume; their keys: rotate, revoke; data categories, purposes and capacities:
add), the console's sign-in locks (lifted here or by `crossroads operator unlock`), and the notification
dead-letter list with replay. Each calls the services the v1 API calls.

A registry change made with a reason keeps it in its audit record's `reason` (instead of the action's name) once
it is made: the record says why, and its holder, category or purpose what was changed.

The two actions that cut an agency off, suspending it and revoking one of its keys, each need a reason and a ticked
"I confirm" box naming what follows (no script needed); without either the agencies page comes back (422) with the
error at that form and its reason kept, and nothing changes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import quote

from aiohttp import web

from broker.accounts.credentials import locked_until
from broker.appkeys import AUDIT, HUB, PRINCIPAL
from broker.audit.log import clipped, edit_recorded
from broker.base import errors
from broker.console.pages import NOTICES, form, page, query_filled, redirect, text
from broker.console.signin import LOCK_OUT
from directory import registry
from directory.keys import parse_key_id, parse_registration, parse_revocation
from directory.names import NAME
from policies.changes import Pending
from policies.rules import MAX_GROUND, ZONES, Rule, parse_rule
from policies.service import MAX_REASON

RULE_FILTERS = ("requester", "category", "purpose", "zone")
OVERLAPS = {"0": "at once", "3600": "in 1 hour", "86400": "in 24 hours", "604800": "in 7 days"}
# What the registry's forms say once done (`?notice=`), besides the console's own notices.
REGISTRY_NOTICES = {
    "agency-updated": "The agency is changed: every hub process uses its new name and adapter URL.",
    "category-added": "The data category is registered.",
    "purpose-added": "The purpose is registered.",
    "capacity-added": "The capacity is registered.",
}


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
    """A rule from the add form: `fields` is a comma-separated list (empty: the whole answer); an empty id
    leaves it to the hub to give one."""
    listed = [name.strip() for name in fields.get("fields", "").split(",") if name.strip()]
    document = {
        "id": fields.get("id", "").strip() or None,
        "requester": fields.get("requester", "").strip(),
        "category": fields.get("category", "").strip(),
        "purpose": fields.get("purpose", "").strip(),
        "zone": fields.get("zone", ""),
        "consent": fields.get("consent") == "on",
        "fields": listed or None,
        "emergency": fields.get("emergency") == "on",
        "ground": fields.get("ground", "").strip() or None,
    }
    return parse_rule(document, new=True)


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
            "max_ground": MAX_GROUND,
            "changes": await request.config_dict[HUB].policies.changes("pending"),
        },
    )


async def add_rule(request: web.Request) -> web.Response:
    hub, entry, fields = request.config_dict[HUB], request[AUDIT], await form(request)
    rule = rule_from_form(fields)
    reason = text(fields, "reason", "the reason for the change", most=MAX_REASON)
    entry.rule_id = rule.id or None
    version, rule = await hub.policies.add(rule, request[PRINCIPAL].id, reason, datetime.now(UTC))
    entry.rule_id = rule.id
    edit_recorded(entry, version, reason)
    if isinstance(version, Pending):
        return redirect(f"/console/rules?notice=change-held#change-{quote(version.change)}")
    return redirect(f"/console/rules?notice=rule-added#rule-{quote(rule.id)}")


async def remove_rule(request: web.Request) -> web.Response:
    hub, entry, fields = request.config_dict[HUB], request[AUDIT], await form(request)
    reason = text(fields, "reason", "the reason for the change", most=MAX_REASON)
    entry.rule_id = request.match_info["id"]
    version = await hub.policies.remove(entry.rule_id, request[PRINCIPAL].id, reason, datetime.now(UTC))
    edit_recorded(entry, version, reason)
    return redirect("/console/rules?notice=" + ("change-held" if isinstance(version, Pending) else "rule-removed"))


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
    version = await hub.policies.rollback(int(number), request[PRINCIPAL].id, reason, datetime.now(UTC))
    edit_recorded(entry, version, reason)
    if isinstance(version, Pending):
        return redirect("/console/rules?notice=change-held")
    return redirect("/console/rules/history?notice=rolled-back")


async def decide_change(request: web.Request) -> web.Response:
    """Another administrator's approval or rejection of a change held for it (four eyes)."""
    hub, entry, fields, now = request.config_dict[HUB], request[AUDIT], await form(request), datetime.now(UTC)
    decision, change_id = fields.get("decision"), request.match_info["id"]
    reason = text(fields, "reason", "the reason for the decision", most=MAX_REASON)
    if decision == "approve":
        entry.policy_version, _ = await hub.policies.approve(change_id, request[PRINCIPAL].id, reason, now)
    elif decision == "reject":
        await hub.policies.reject(change_id, request[PRINCIPAL].id, reason, now)
    else:
        raise errors.Invalid("approve or reject the change")
    entry.exchange, entry.reason = change_id, clipped(reason)
    return redirect(f"/console/rules?notice=change-{decision}d")


@dataclass(frozen=True)
class Unconfirmed:
    """A suspension or revocation sent without its reason or its confirmation: the form it came from (`target`,
    its HTML id), what is missing, and the reason given so far."""

    target: str
    error: str
    reason: str


def unconfirmed(fields: Mapping[str, str], target: str, action: str) -> Unconfirmed | None:
    """What a suspension or revocation form lacks (a reason, then the confirmation box), or None."""
    reason = fields.get("reason", "").strip()
    if not reason:
        return Unconfirmed(target, f"Give the reason to {action}: it is kept in the audit record.", reason)
    if fields.get("confirm") != "on":
        return Unconfirmed(target, f"Tick the box to confirm that you mean to {action}.", reason)
    return None


async def refused(request: web.Request, missing: Unconfirmed) -> web.Response:
    """The agencies page again, with the error at the form that lacked something; nothing was changed."""
    request[AUDIT].reason = "unconfirmed"
    return await agencies(request, missing)


async def agencies(request: web.Request, missing: Unconfirmed | None = None) -> web.Response:
    """The registry: agencies with their keys, then the data categories, purposes and capacities."""
    hub, now = request.config_dict[HUB], datetime.now(UTC)
    listed = [
        (agency, [key.as_json(now) for key in await hub.directory.keys_of(agency.id)])
        for agency in await hub.registry.agencies()
    ]
    asked = request.query.get("notice", "")
    return page(
        request,
        "agencies.html",
        {
            "agencies": listed,
            "overlaps": OVERLAPS,
            "categories": await hub.registry.categories(),
            "purposes": await hub.registry.purposes(),
            "capacities": await hub.registry.capacities(),
            "max_reason": registry.MAX_REASON,
            "notice": None if missing else REGISTRY_NOTICES.get(asked) or NOTICES.get(asked),
            "missing": missing,
        },
        422 if missing else 200,
    )


def _reason(fields: Mapping[str, str], *, required: bool = True) -> str | None:
    """The administrator's reason for a registry change; the two forms that had none (registering an agency,
    resuming it) still work without one."""
    given = fields.get("reason", "").strip()
    if not given and not required:
        return None
    return registry.parse_reason(given)


async def register_agency(request: web.Request) -> web.Response:
    """A new agency, with its first key if one is given; its roles and the rules that let it ask anything are
    rule edits."""
    hub, entry, fields, now = request.config_dict[HUB], request[AUDIT], await form(request), datetime.now(UTC)
    reason = _reason(fields, required=False)
    document: dict[str, object] = {name: fields.get(name, "").strip() for name in ("id", "name", "adapter_url")}
    key_id, pem = fields.get("key_id", "").strip(), fields.get("public_key_pem", "").strip()
    if key_id or pem:
        document["key"] = {"key_id": key_id, "public_key_pem": pem + "\n"}
    entry.holder = str(document["id"]) if NAME.fullmatch(str(document["id"])) else None
    agency, _ = await hub.registry.register_agency(registry.parse_agency(document, now))
    entry.reason = reason
    return redirect(f"/console/agencies?notice=agency-registered#{quote(agency.id)}")


async def _agency(request: web.Request) -> str:
    agency_id = request.match_info["id"]
    request[AUDIT].holder = agency_id if NAME.fullmatch(agency_id) else None
    if await request.config_dict[HUB].registry.agency(agency_id) is None:
        raise errors.NotFound(f"no agency {agency_id[:64]!r}")
    return agency_id


async def _change_agency(
    request: web.Request, agency_id: str, change: registry.AgencyChange, reason: str | None
) -> None:
    if await request.config_dict[HUB].registry.update_agency(agency_id, change) is None:
        raise errors.NotFound(f"no agency {agency_id!r}")
    request[AUDIT].reason = reason


async def update_agency(request: web.Request) -> web.Response:
    """A new name or adapter URL for the agency (the fields left as they were change nothing)."""
    agency_id, fields = await _agency(request), await form(request)
    reason = _reason(fields)
    change = registry.parse_agency_change(
        {name: fields.get(name, "").strip() for name in ("name", "adapter_url") if name in fields}
    )
    await _change_agency(request, agency_id, change, reason)
    return redirect(f"/console/agencies?notice=agency-updated#{quote(agency_id)}")


async def agency_status(request: web.Request) -> web.Response:
    agency_id, fields = await _agency(request), await form(request)
    status = fields.get("status")
    if status not in registry.STATUSES:
        raise errors.Invalid("an agency is active or suspended")
    if status == "suspended" and (missing := unconfirmed(fields, f"suspend-{agency_id}", "suspend this agency")):
        return await refused(request, missing)
    reason = _reason(fields, required=status == "suspended")
    await _change_agency(request, agency_id, registry.AgencyChange(status=status), reason)
    return redirect(f"/console/agencies?notice=agency-{status}#{quote(agency_id)}")


async def add_category(request: web.Request) -> web.Response:
    hub, entry, fields = request.config_dict[HUB], request[AUDIT], await form(request)
    reason = _reason(fields)
    category = registry.parse_term(_term_fields(fields), "category")
    entry.category = category.name
    await hub.registry.add_category(category)
    entry.reason = reason
    return redirect(f"/console/agencies?notice=category-added#category-{quote(category.name)}")


async def add_purpose(request: web.Request) -> web.Response:
    hub, entry, fields = request.config_dict[HUB], request[AUDIT], await form(request)
    reason = _reason(fields)
    document: dict[str, object] = {**_term_fields(fields), "confidential": fields.get("confidential") == "on"}
    embargo = fields.get("embargo_days", "").strip()
    if embargo:
        if not embargo.isdigit():
            raise errors.Invalid("embargo days is a whole number of days")
        document["embargo_days"] = int(embargo)
    purpose = registry.parse_purpose(document)
    entry.purpose = purpose.name
    await hub.registry.add_purpose(purpose)
    entry.reason = reason
    return redirect(f"/console/agencies?notice=purpose-added#purpose-{quote(purpose.name)}")


async def add_capacity(request: web.Request) -> web.Response:
    hub, entry, fields = request.config_dict[HUB], request[AUDIT], await form(request)
    reason = _reason(fields)
    capacity = await hub.registry.add_capacity(registry.parse_term(_term_fields(fields), "capacity"))
    entry.reason = reason
    return redirect(f"/console/agencies?notice=capacity-added#capacity-{quote(capacity.name)}")


def _term_fields(fields: Mapping[str, str]) -> dict[str, object]:
    return {"name": fields.get("name", "").strip(), "description": fields.get("description", "").strip()}


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
    key_id = parse_key_id(request.match_info["id"])
    if missing := unconfirmed(fields, f"revoke-{key_id}", "revoke this key"):
        return await refused(request, missing)
    reason = parse_revocation({"reason": fields.get("reason", "")})
    revoked = await hub.directory.revoke_key(agency_id, key_id, request[PRINCIPAL].id, reason, now)
    if revoked is None:
        raise errors.NotFound(f"agency {agency_id!r} has no key {key_id!r}")
    return redirect(f"/console/agencies?notice=key-revoked#{quote(agency_id)}")


@dataclass(frozen=True)
class FailingPair:
    operator: str
    peer: str
    failures: int
    last: datetime
    locked_until: datetime | None


async def sign_in_locks(request: web.Request) -> web.Response:
    """The (operator id, address) pairs with failed sign-ins remembered, and when the lock on each ends."""
    now = datetime.now(UTC)
    failing = await request.config_dict[HUB].console.failing(now - LOCK_OUT.remembered)
    pairs = [
        FailingPair(operator, peer, len(failures), max(failures), locked_until(failures, now, LOCK_OUT))
        for (operator, peer), failures in sorted(failing.items())
    ]
    return page(request, "sign_in_locks.html", {"pairs": pairs, "policy": LOCK_OUT})


async def unlock_sign_in(request: web.Request) -> web.Response:
    """Forget an operator id's failed sign-ins from one address (every address, with none given); the record
    names the operator id as its holder."""
    hub, fields = request.config_dict[HUB], await form(request)
    operator_id = fields.get("operator", "").strip()
    if not NAME.fullmatch(operator_id):
        raise errors.Invalid("operator is an operator id of [a-z0-9-]")
    request[AUDIT].holder = operator_id
    await hub.console.unlock(operator_id, text(fields, "peer", "the address", required=False, most=64) or None)
    return redirect("/console/sign-in-locks?notice=unlocked")


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
    web.post("/rules/changes/{id}/decision", decide_change, name="rule_change_decision"),
    web.get("/agencies", agencies, name="agencies"),
    web.post("/agencies", register_agency, name="agency_register"),
    web.post("/agencies/{id}", update_agency, name="agency_update"),
    web.post("/agencies/{id}/status", agency_status, name="agency_status"),
    web.post("/agencies/{id}/keys", rotate_key, name="key_rotate"),
    web.post("/keys/{id}/revoke", revoke_key, name="key_revoke"),
    web.post("/categories", add_category, name="category_add"),
    web.post("/purposes", add_purpose, name="purpose_add"),
    web.post("/capacities", add_capacity, name="capacity_add"),
    web.get("/sign-in-locks", sign_in_locks, name="sign_in_locks"),
    web.post("/sign-in-locks/unlock", unlock_sign_in, name="sign_in_unlock"),
    web.get("/dead-letters", dead_letters, name="dead_letters"),
    web.post("/dead-letters/replay", replay, name="dead_letter_replay"),
]
