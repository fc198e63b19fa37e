"""Consent and refusals over HTTP against the demo world, on SQLite and PostgreSQL: give → exchange delivered
→ withdraw → the next exchange refused; refusals beating consents but not legal mandates; the history kept
whole; bad requests changing nothing."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from adapters.client import HubProblem
from adapters.examples.demo_agencies import ANNA, JAN, SOFIE
from broker.cli.demo import DemoWorld

INCOME = {"subject": ANNA, "category": "income", "purpose": "benefit-eligibility"}
CONSENT = {
    "subject": ANNA,
    "grantee": "family-benefits",
    "categories": ["income"],
    "purposes": ["benefit-eligibility"],
    "evidence": "portal session 7731",
}


async def refused(call: Any, *args: Any) -> tuple[int, str]:
    with pytest.raises(HubProblem) as problem:
        await call(*args)
    return problem.value.status, problem.value.name


async def test_give_use_withdraw(world: DemoWorld, session: aiohttp.ClientSession) -> None:
    agency, portal = world.client("family-benefits", session), world.client("citizen-portal", session)
    assert await refused(agency.exchange, *INCOME.values()) == (403, "no-consent")
    status, given = await portal.call("POST", "/v1/consents", CONSENT)
    assert status == 201 and (given["status"], given["channel"], given["grantor"]) == ("active", "portal", ANNA)
    assert (await agency.exchange(**INCOME)).data == {"taxable_income": 41250, "year": 2025}
    status, withdrawn = await portal.call("POST", f"/v1/consents/{given['consent']}/withdraw")
    assert status == 200 and withdrawn["status"] == "withdrawn"
    assert (withdrawn["withdrawn_by"], withdrawn["withdrawn_channel"]) == ("citizen-portal", "portal")
    assert await refused(agency.exchange, *INCOME.values()) == (403, "no-consent")
    assert await refused(portal.call, "POST", f"/v1/consents/{given['consent']}/withdraw") == (409, "conflict")
    _, history = await portal.call("GET", f"/v1/subjects/{ANNA}/consents")
    [record] = history["consents"]
    assert record == {**given, **{key: withdrawn[key] for key in withdrawn if key.startswith("withdrawn")}} | {
        "status": "withdrawn"
    }
    audited = [(record.kind, record.status) for record in await world.hub.audit.records(consent_id=given["consent"])]
    assert audited == [("consent", 201), ("exchange", 200), ("consent", 200), ("consent", 409)]


async def test_the_most_specific_consent_is_named_in_the_audit(
    world: DemoWorld, session: aiohttp.ClientSession
) -> None:
    portal = world.client("citizen-portal", session)
    _, anyone = await portal.call("POST", "/v1/consents", {**CONSENT, "grantee": "*"})
    _, named = await portal.call("POST", "/v1/consents", CONSENT)
    _, broad = await portal.call("POST", "/v1/consents", {**CONSENT, "categories": ["income", "civil-status"]})
    delivered = await world.client("family-benefits", session).exchange(**INCOME)
    [record] = await world.hub.audit.records(exchange=delivered.exchange)
    assert record.consent_id == named["consent"] != anyone["consent"] != broad["consent"]


async def test_partial_consent_covers_only_what_it_lists(
    sqlite_world: DemoWorld, session: aiohttp.ClientSession
) -> None:
    portal, agency = sqlite_world.client("citizen-portal", session), sqlite_world.client("municipality-leuven", session)
    civil = {"subject": ANNA, "category": "civil-status", "purpose": "benefit-eligibility"}
    await portal.call("POST", "/v1/consents", {**CONSENT, "grantee": "municipality-leuven", "categories": ["income"]})
    assert await refused(agency.exchange, *civil.values()) == (403, "no-consent")  # another category
    await portal.call(
        "POST",
        "/v1/consents",
        {**CONSENT, "grantee": "family-benefits", "categories": ["civil-status"]},
    )
    assert await refused(agency.exchange, *civil.values()) == (403, "no-consent")  # another grantee
    await portal.call(
        "POST",
        "/v1/consents",
        {**CONSENT, "grantee": "municipality-leuven", "categories": ["civil-status"], "purposes": ["job-placement"]},
    )
    assert await refused(agency.exchange, *civil.values()) == (403, "no-consent")  # another purpose
    await portal.call(
        "POST", "/v1/consents", {**CONSENT, "grantee": "municipality-leuven", "categories": ["civil-status"]}
    )
    assert (await agency.exchange(**civil)).data == {
        "name": "Anna Peeters",
        "address": "Bondgenotenlaan 12, 3000 Leuven",
        "household_size": 4,
    }


async def test_a_refusal_beats_consent_but_not_a_legal_mandate(
    world: DemoWorld, session: aiohttp.ClientSession
) -> None:
    agency, admin = world.client("family-benefits", session), world.client("admin-desk", session)
    sofie = {"subject": SOFIE, "category": "income", "purpose": "benefit-eligibility"}
    assert (await agency.exchange(**sofie)).status == 200  # under her seeded consent
    status, refusal = await admin.call(
        "POST", "/v1/refusals", {"subject": SOFIE, "agency": "family-benefits", "categories": ["income"]}
    )
    assert status == 201 and (refusal["status"], refusal["channel"], refusal["categories"]) == (
        "active",
        "counter",
        ["income"],
    )
    assert await refused(agency.exchange, *sofie.values()) == (403, "consent-refused")
    [record] = (await world.hub.audit.records(kind="exchange"))[-1:]
    assert (record.reason, record.consent_id) == ("consent-refused", refusal["refusal"])
    fraud = {"subject": SOFIE, "category": "income", "purpose": "fraud-investigation"}
    assert (await agency.exchange(**fraud)).status == 200  # rule r-mandate-1 needs no consent
    civil = {"subject": SOFIE, "category": "civil-status", "purpose": "benefit-eligibility"}
    assert (await agency.exchange(**civil)).status == 200  # the refusal is of income only
    status, lifted = await admin.call("POST", f"/v1/refusals/{refusal['refusal']}/lift?channel=phone")
    assert status == 200 and (lifted["status"], lifted["lifted_channel"], lifted["lifted_by"]) == (
        "lifted",
        "phone",
        "admin-desk",
    )
    assert (await agency.exchange(**sofie)).status == 200  # her consent applies again
    assert await refused(admin.call, "POST", f"/v1/refusals/{refusal['refusal']}/lift") == (409, "conflict")
    _, history = await world.client("citizen-portal", session).call("GET", f"/v1/subjects/{SOFIE}/consents")
    assert [(r["refusal"], r["status"]) for r in history["refusals"]] == [(refusal["refusal"], "lifted")]
    assert [c["status"] for c in history["consents"]] == ["active"]


async def test_jans_seeded_refusal_of_everything(sqlite_world: DemoWorld, session: aiohttp.ClientSession) -> None:
    _, history = await sqlite_world.client("citizen-portal", session).call("GET", f"/v1/subjects/{JAN}/consents")
    [consent], [refusal] = history["consents"], history["refusals"]
    assert (consent["status"], refusal["status"], refusal["categories"]) == ("active", "active", None)
    agency = sqlite_world.client("family-benefits", session)
    assert await refused(agency.exchange, JAN, "income", "benefit-eligibility") == (403, "consent-refused")
    assert (await agency.exchange(JAN, "civil-status", "benefit-eligibility")).status == 200  # r-1: no consent


@pytest.mark.parametrize(
    ("change", "detail"),
    [
        ({"grantee": "nobody"}, "not a registered agency"),
        ({"categories": ["shoe-size"]}, "not a registered category"),
        ({"purposes": ["curiosity"]}, "not a registered purpose"),
        ({"valid_from": "2027-01-01T00:00:00+00:00", "valid_until": "2026-12-01T00:00:00+00:00"}, "after valid_from"),
        ({"grantor": "60010100123"}, "mandate"),
        ({"channel": "telepathy"}, "channel"),
        ({"evidence_sha256": "abc"}, "evidence_sha256"),
        ({"extra": True}, "unknown fields"),
    ],
)
async def test_bad_consents_change_nothing(
    sqlite_world: DemoWorld, session: aiohttp.ClientSession, change: dict[str, object], detail: str
) -> None:
    portal = sqlite_world.client("citizen-portal", session)
    with pytest.raises(HubProblem) as problem:
        await portal.call("POST", "/v1/consents", {**CONSENT, **change})
    assert (problem.value.status, problem.value.name) == (422, "invalid") and detail in problem.value.detail
    assert await sqlite_world.hub.consents.history(ANNA) == ([], [])


@pytest.mark.parametrize(
    ("document", "detail"),
    [
        ({"subject": ANNA, "agency": "nobody"}, "not a registered agency"),
        ({"subject": ANNA, "agency": "*"}, "agency"),
        ({"subject": ANNA, "agency": "tax-authority", "categories": ["shoe-size"]}, "not a registered category"),
        ({"agency": "tax-authority"}, "missing fields: subject"),
    ],
)
async def test_bad_refusals_change_nothing(
    sqlite_world: DemoWorld, session: aiohttp.ClientSession, document: dict[str, object], detail: str
) -> None:
    with pytest.raises(HubProblem) as problem:
        await sqlite_world.client("citizen-portal", session).call("POST", "/v1/refusals", document)
    assert (problem.value.status, problem.value.name) == (422, "invalid") and detail in problem.value.detail
    assert await sqlite_world.hub.consents.history(ANNA) == ([], [])


async def test_unknown_ids_and_bad_channels(sqlite_world: DemoWorld, session: aiohttp.ClientSession) -> None:
    portal = sqlite_world.client("citizen-portal", session)
    assert await refused(portal.call, "POST", "/v1/consents/c-none/withdraw") == (404, "unknown-consent")
    assert await refused(portal.call, "POST", "/v1/refusals/r-none/lift") == (404, "unknown-refusal")
    _, given = await portal.call("POST", "/v1/consents", CONSENT)
    withdraw = f"/v1/consents/{given['consent']}/withdraw"
    assert await refused(portal.call, "POST", withdraw + "?channel=fax") == (422, "invalid")
    assert await refused(portal.call, "POST", withdraw + "?by=me") == (422, "invalid")
    [consent], _ = await sqlite_world.hub.consents.history(ANNA)
    assert consent.withdrawal is None


async def test_agencies_cannot_give_consent_or_refuse(sqlite_world: DemoWorld, session: aiohttp.ClientSession) -> None:
    agency = sqlite_world.client("family-benefits", session)
    assert await refused(agency.call, "POST", "/v1/consents", CONSENT) == (403, "forbidden")
    assert await refused(agency.call, "POST", "/v1/refusals", {"subject": ANNA, "agency": "x"}) == (403, "forbidden")
    officer = sqlite_world.client("privacy-office", session)
    assert await refused(officer.call, "POST", "/v1/refusals/r-1/lift") == (403, "forbidden")
