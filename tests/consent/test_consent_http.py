"""Consent over HTTP: give → exchange delivered → withdraw → refused again; history kept whole."""

from __future__ import annotations

import aiohttp
import pytest

from adapters.client import HubProblem
from adapters.examples.demo_agencies import ANNA
from broker.demo import DemoWorld

INCOME = {"subject": ANNA, "category": "income", "purpose": "benefit-eligibility"}
CONSENT = {
    "subject": ANNA,
    "grantee": "family-benefits",
    "categories": ["income"],
    "purposes": ["benefit-eligibility"],
    "evidence": "portal session 7731",
}


async def test_give_use_withdraw(world: DemoWorld, session: aiohttp.ClientSession) -> None:
    agency, portal = world.client("family-benefits", session), world.client("citizen-portal", session)
    with pytest.raises(HubProblem, match="no-consent"):
        await agency.exchange(**INCOME)
    status, given = await portal.call("POST", "/v1/consents", CONSENT)
    assert status == 201
    assert (await agency.exchange(**INCOME)).status == 200
    status, withdrawn = await portal.call("POST", f"/v1/consents/{given['consent']}/withdraw")
    assert status == 200 and withdrawn["status"] == "withdrawn"
    with pytest.raises(HubProblem, match="no-consent"):
        await agency.exchange(**INCOME)
    with pytest.raises(HubProblem) as twice:
        await portal.call("POST", f"/v1/consents/{given['consent']}/withdraw")
    assert twice.value.status == 409
    _, history = await portal.call("GET", f"/v1/subjects/{ANNA}/consents")
    assert [(c["consent"], c["status"]) for c in history["consents"]] == [(given["consent"], "withdrawn")]
    audited = [
        (record.kind, record.status) for record in await world.hub.audit.records(consent_id=given["consent"])
    ]
    assert audited == [("consent", 201), ("exchange", 200), ("consent", 200), ("consent", 409)]


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"grantee": "nobody"}, "invalid"),
        ({"categories": ["shoe-size"]}, "invalid"),
        ({"purposes": ["curiosity"]}, "invalid"),
    ],
)
async def test_bad_consents_change_nothing(
    sqlite_world: DemoWorld, session: aiohttp.ClientSession, change: dict[str, object], problem: str
) -> None:
    portal = sqlite_world.client("citizen-portal", session)
    with pytest.raises(HubProblem) as refused:
        await portal.call("POST", "/v1/consents", {**CONSENT, **change})
    assert (refused.value.status, refused.value.name) == (422, problem)
    assert await sqlite_world.hub.consents.history(ANNA) == []


async def test_agencies_cannot_give_consent(sqlite_world: DemoWorld, session: aiohttp.ClientSession) -> None:
    with pytest.raises(HubProblem) as refused:
        await sqlite_world.client("family-benefits", session).call("POST", "/v1/consents", CONSENT)
    assert (refused.value.status, refused.value.name) == (403, "forbidden")
