"""The registry over the signed API, end to end on the demo world: administrators register an agency (whose first
key then signs its requests), rename it, move its adapter, suspend and resume it (its exchanges refused and
delivered again), and register categories, purposes and capacities; refusals change nothing; every call leaves an
audit record, a change's with its reason."""

from __future__ import annotations

from typing import Any

import aiohttp
import pytest

from adapters.client import HubClient, HubProblem
from adapters.examples.demo_agencies import ANNA
from broker.base.signing import SigningKey, generate_key, public_key_pem
from broker.cli.demo import HUB_KEY_ID, DemoWorld

CIVIL_STATUS = {"subject": ANNA, "category": "civil-status", "purpose": "benefit-eligibility"}


async def _refused(client: HubClient, method: str, path: str, body: dict[str, Any] | None = None) -> HubProblem:
    with pytest.raises(HubProblem) as refused:
        await client.call(method, path, body)
    return refused.value


async def test_an_agency_registered_over_the_api_signs_with_its_first_key(
    world: DemoWorld, session: aiohttp.ClientSession
) -> None:
    admin = world.client("admin-desk", session)
    key = SigningKey("pension-fund-2026", generate_key())
    status, registered = await admin.call(
        "POST",
        "/v1/agencies",
        {
            "id": "pension-fund",
            "name": "Pension Fund",
            "adapter_url": "https://pension.example/crossroads",
            "key": {"key_id": key.key_id, "public_key_pem": public_key_pem(key.public_key)},
            "reason": "joins the hub, convention 2026/12",
        },
    )
    assert status == 201
    assert {name: registered[name] for name in ("id", "name", "adapter_url", "status")} == {
        "id": "pension-fund",
        "name": "Pension Fund",
        "adapter_url": "https://pension.example/crossroads",
        "status": "active",
    }
    assert registered["key"]["key_id"] == key.key_id and registered["key"]["valid"] is True
    _, listed = await admin.call("GET", "/v1/agencies")
    assert "pension-fund" in [agency["id"] for agency in listed["agencies"]]
    _, one = await admin.call("GET", "/v1/agencies/pension-fund")
    assert one == {k: registered[k] for k in ("id", "name", "adapter_url", "status")}
    newcomer = HubClient(world.hub_url, key, HUB_KEY_ID, world.hub.key.public_key, session)
    refused = await _refused(newcomer, "POST", "/v1/exchanges", CIVIL_STATUS)
    assert refused.name == "no-relationship"  # its key authenticates it; the directory decides the rest
    [record] = [r for r in await world.hub.audit.records(kind="registry") if r.status == 201]
    assert (record.requester, record.holder, record.reason, record.outcome) == (
        "admin-desk",
        "pension-fund",
        "joins the hub, convention 2026/12",
        "recorded",
    )


async def test_a_suspended_agency_is_refused_until_resumed(
    sqlite_world: DemoWorld, session: aiohttp.ClientSession
) -> None:
    world = sqlite_world
    admin, agency = world.client("admin-desk", session), world.client("family-benefits", session)
    assert (await agency.exchange(**CIVIL_STATUS)).status == 200
    _, suspended = await admin.call(
        "PATCH", "/v1/agencies/family-benefits", {"status": "suspended", "reason": "audit finding 2026-31"}
    )
    assert suspended["status"] == "suspended"
    refused = await _refused(agency, "POST", "/v1/exchanges", CIVIL_STATUS)
    assert (refused.status, refused.name) == (403, "suspended")
    _, resumed = await admin.call("PATCH", "/v1/agencies/family-benefits", {"status": "active", "reason": "resolved"})
    assert resumed["status"] == "active"
    assert (await agency.exchange(**CIVIL_STATUS)).status == 200
    changes = [r for r in await world.hub.audit.records(kind="registry", holder="family-benefits")]
    assert [(r.status, r.reason) for r in changes] == [(200, "audit finding 2026-31"), (200, "resolved")]


async def test_an_agency_moves_its_adapter(sqlite_world: DemoWorld, session: aiohttp.ClientSession) -> None:
    world = sqlite_world
    admin, agency = world.client("admin-desk", session), world.client("family-benefits", session)
    register_url = world.adapter_urls["population-register"]
    _, moved = await admin.call(
        "PATCH",
        "/v1/agencies/population-register",
        {"name": "National Register", "adapter_url": "http://127.0.0.1:9/gone", "reason": "new data centre"},
    )
    assert (moved["name"], moved["adapter_url"]) == ("National Register", "http://127.0.0.1:9/gone")
    refused = await _refused(agency, "POST", "/v1/exchanges", CIVIL_STATUS)
    assert refused.status in (502, 503, 504)  # the hub now calls the new (unreachable) address
    await admin.call("PATCH", "/v1/agencies/population-register", {"adapter_url": register_url, "reason": "back"})
    assert (await agency.exchange(**CIVIL_STATUS)).status == 200


async def test_names_are_registered(sqlite_world: DemoWorld, session: aiohttp.ClientSession) -> None:
    world = sqlite_world
    admin = world.client("admin-desk", session)
    status, category = await admin.call(
        "POST",
        "/v1/categories",
        {"name": "disability", "description": "Disability recognition", "reason": "decree 2026/41"},
    )
    assert (status, category) == (201, {"name": "disability", "description": "Disability recognition", "sealed": False})
    status, purpose = await admin.call(
        "POST",
        "/v1/purposes",
        {"name": "tax-audit", "confidential": True, "embargo_days": 90, "reason": "decree 2026/42"},
    )
    assert (status, purpose) == (
        201,
        {"name": "tax-audit", "description": "", "confidential": True, "embargo_days": 90},
    )
    status, capacity = await admin.call("POST", "/v1/capacities", {"name": "pensioner", "reason": "decree 2026/43"})
    assert (status, capacity) == (201, {"name": "pensioner", "description": ""})
    _, categories = await admin.call("GET", "/v1/categories")
    _, purposes = await admin.call("GET", "/v1/purposes")
    _, capacities = await admin.call("GET", "/v1/capacities")
    assert {"name": "disability", "description": "Disability recognition", "sealed": False} in categories["categories"]
    assert purpose in purposes["purposes"]
    assert capacity in capacities["capacities"]
    # The new names count at once: a rule may name them.
    rule = {
        "requester": "agency:family-benefits",
        "category": "disability",
        "purpose": "tax-audit",
        "zone": "grey",
        "ground": "decree 2026/42, art. 7",
    }
    status, added = await admin.call("POST", "/v1/policies", {"rule": rule, "reason": "disability for tax audits"})
    assert status == 201 and added["rule"]["category"] == "disability"
    records = [r for r in await world.hub.audit.records(kind="registry") if r.status == 201]
    assert [(r.category, r.purpose, r.reason) for r in records] == [
        ("disability", None, "decree 2026/41"),
        (None, "tax-audit", "decree 2026/42"),
        (None, None, "decree 2026/43"),
    ]


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "name"),
    [
        ("POST", "/v1/categories", {"name": "income", "reason": "again"}, 409, "conflict"),
        ("POST", "/v1/purposes", {"name": "benefit-eligibility", "reason": "again"}, 409, "conflict"),
        ("POST", "/v1/categories", {"name": "disability"}, 422, "invalid"),
        ("POST", "/v1/categories", {"name": "disability", "reason": "x" * 64}, 422, "invalid"),
        ("POST", "/v1/categories", {"name": "Pension!", "reason": "typo"}, 422, "invalid"),
        ("POST", "/v1/purposes", {"name": "audit", "embargo_days": 5, "reason": "x"}, 422, "invalid"),
        ("POST", "/v1/capacities", {"name": "pensioner", "colour": "red", "reason": "x"}, 422, "invalid"),
        (
            "POST",
            "/v1/agencies",
            {"id": "family-benefits", "name": "Again", "adapter_url": "https://x.example", "reason": "x"},
            409,
            "conflict",
        ),
        (
            "POST",
            "/v1/agencies",
            {"id": "p", "name": "P", "adapter_url": "https://x.example", "reason": "x"},
            422,
            "invalid",
        ),
        ("PATCH", "/v1/agencies/family-benefits", {"status": "gone", "reason": "x"}, 422, "invalid"),
        ("PATCH", "/v1/agencies/family-benefits", {"reason": "nothing"}, 422, "invalid"),
        ("PATCH", "/v1/agencies/family-benefits", {"status": "suspended"}, 422, "invalid"),
        ("PATCH", "/v1/agencies/nobody-here", {"status": "suspended", "reason": "x"}, 404, "not-found"),
        ("GET", "/v1/agencies/Not_An_Id", None, 404, "not-found"),
    ],
)
async def test_refusals_change_nothing(
    sqlite_world: DemoWorld,
    session: aiohttp.ClientSession,
    method: str,
    path: str,
    body: dict[str, Any] | None,
    status: int,
    name: str,
) -> None:
    world = sqlite_world
    before = (await world.hub.registry.agencies(), await world.hub.registry.categories())
    refused = await _refused(world.client("admin-desk", session), method, path, body)
    assert (refused.status, refused.name) == (status, name)
    assert (await world.hub.registry.agencies(), await world.hub.registry.categories()) == before
    [record] = await world.hub.audit.records(kind="registry")
    assert (record.status, record.outcome, record.reason) == (status, "refused", name)  # the problem, not a reason


async def test_only_administrators_keep_the_registry(sqlite_world: DemoWorld, session: aiohttp.ClientSession) -> None:
    for principal in ("family-benefits", "privacy-office", "citizen-portal"):
        client = sqlite_world.client(principal, session)
        for method, path, body in (
            ("GET", "/v1/agencies", None),
            ("PATCH", "/v1/agencies/family-benefits", {"status": "suspended", "reason": "x"}),
            ("POST", "/v1/categories", {"name": "disability", "reason": "x"}),
        ):
            refused = await _refused(client, method, path, body)
            assert (refused.status, refused.name) == (403, "forbidden")
    agency = await sqlite_world.hub.registry.agency("family-benefits")
    assert agency is not None and agency.status == "active"
