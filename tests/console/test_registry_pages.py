"""The registry in the console, over plain HTTP on the demo world: administrators rename an agency and move its
adapter, suspend and resume it, register one without a key, and add categories, purposes and capacities, each
with a reason its audit record keeps; refusals change nothing; rules added without an id are named by the hub;
the rule history shows groupings and marks rollbacks. Only administrators may."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from html import unescape

import aiohttp
import pytest

from broker.cli.demo import DemoWorld
from tests.console.test_sessions import Browser


@pytest.fixture
async def admin(sqlite_world: DemoWorld) -> AsyncIterator[Browser]:
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        browser = Browser(sqlite_world, session)
        signed_in = await browser.sign_in("admin-desk", sqlite_world.console_passwords["admin-desk"])
        assert signed_in.status == 303
        yield browser


async def test_an_agency_is_renamed_moved_suspended_and_resumed(sqlite_world: DemoWorld, admin: Browser) -> None:
    world = sqlite_world
    token = await admin.token("/console/agencies")
    fields = {"csrf": token, "name": "National Register", "adapter_url": "https://register.example/v2"}
    refused = await admin.post("/console/agencies/population-register", fields)  # no reason
    assert refused.status == 422
    moved = await admin.post("/console/agencies/population-register", {**fields, "reason": "new data centre"})
    assert (
        moved.status == 303
        and moved.headers["Location"] == "/console/agencies?notice=agency-updated#population-register"
    )
    agency = await world.hub.registry.agency("population-register")
    assert agency is not None and (agency.name, agency.adapter_url) == (
        "National Register",
        "https://register.example/v2",
    )
    suspended = await admin.post(
        "/console/agencies/population-register/status",
        {"csrf": token, "status": "suspended", "reason": "audit", "confirm": "on"},
    )
    assert suspended.status == 303
    status, page = await admin.get("/console/agencies?notice=agency-updated")
    assert status == 200 and "The agency is changed" in page and "Resume National Register" in page
    resumed = await admin.post(
        "/console/agencies/population-register/status", {"csrf": token, "status": "active", "reason": "audit closed"}
    )
    assert resumed.status == 303
    agency = await world.hub.registry.agency("population-register")
    assert agency is not None and agency.status == "active"
    records = await world.hub.audit.records(kind="console", holder="population-register")
    assert [(r.status, r.outcome, r.reason) for r in records] == [
        (422, "refused", "invalid"),
        (303, "recorded", "new data centre"),
        (303, "recorded", "audit"),
        (303, "recorded", "audit closed"),
    ]


async def test_an_agency_is_registered_without_a_key(sqlite_world: DemoWorld, admin: Browser) -> None:
    token = await admin.token("/console/agencies")
    fields = {
        "csrf": token,
        "id": "pension-fund",
        "name": "Pension Fund",
        "adapter_url": "https://pension.example/crossroads",
        "key_id": "",
        "public_key_pem": "",
        "reason": "joins the hub",
    }
    registered = await admin.post("/console/agencies", fields)
    assert registered.status == 303
    half = await admin.post("/console/agencies", {**fields, "id": "half-agency", "key_id": "half-1"})
    assert half.status == 422  # a key id without its key
    assert await sqlite_world.hub.directory.keys_of("pension-fund") == []
    assert await sqlite_world.hub.registry.agency("half-agency") is None
    status, page = await admin.get("/console/agencies")
    assert status == 200 and "No key: this agency cannot sign a request." in page
    records = await sqlite_world.hub.audit.records(kind="console", reason="joins the hub")
    assert [(r.holder, r.status) for r in records] == [("pension-fund", 303)]


async def test_names_are_added_with_a_reason(sqlite_world: DemoWorld, admin: Browser) -> None:
    world = sqlite_world
    token = await admin.token("/console/agencies")
    category = await admin.post(
        "/console/categories", {"csrf": token, "name": "disability", "description": "Disability", "reason": "d1"}
    )
    assert category.status == 303 and category.headers["Location"].endswith("#category-disability")
    purpose = await admin.post(
        "/console/purposes",
        {"csrf": token, "name": "tax-audit", "confidential": "on", "embargo_days": "90", "reason": "d2"},
    )
    assert purpose.status == 303
    capacity = await admin.post("/console/capacities", {"csrf": token, "name": "pensioner", "reason": "d3"})
    assert capacity.status == 303
    for path, fields in (
        ("/console/categories", {"name": "income", "reason": "again"}),  # registered already: 409
        ("/console/purposes", {"name": "audit", "embargo_days": "9", "reason": "not confidential"}),  # 422
        ("/console/purposes", {"name": "audit", "confidential": "on", "embargo_days": "-1", "reason": "x"}),  # 422
        ("/console/capacities", {"name": "pensioner-2"}),  # no reason: 422
        ("/console/capacities", {"name": "pensioner-2", "reason": "x" * 64}),  # too long for its record: 422
    ):
        assert (await admin.post(path, {"csrf": token, **fields})).status in (409, 422), fields
    status, page = await admin.get("/console/agencies?notice=purpose-added")
    text = unescape(page)
    assert status == 200 and "The purpose is registered." in text
    assert 'id="category-disability"' in page and 'id="capacity-pensioner"' in page
    assert "90 days after each access (confidential)" in text
    assert "pensioner" in {term.name for term in await world.hub.registry.capacities()}
    [tax_audit] = [p for p in await world.hub.registry.purposes() if p.name == "tax-audit"]
    assert (tax_audit.confidential, tax_audit.embargo_days) == (True, 90)
    records = [
        r for r in await world.hub.audit.records(kind="console") if r.status not in (200, 303) or r.reason[0] == "d"
    ]
    assert [(r.category, r.purpose, r.status, r.reason) for r in records] == [
        ("disability", None, 303, "d1"),
        (None, "tax-audit", 303, "d2"),
        (None, None, 303, "d3"),
        ("income", None, 409, "conflict"),
        (None, None, 422, "invalid"),
        (None, None, 422, "invalid"),
        (None, None, 422, "invalid"),
        (None, None, 422, "invalid"),
    ]


async def test_a_rule_added_without_an_id_is_named_by_the_hub(sqlite_world: DemoWorld, admin: Browser) -> None:
    token = await admin.token("/console/rules")
    fields = {
        "csrf": token,
        "id": "",
        "requester": "agency:employment-office",
        "category": "income",
        "purpose": "job-placement",
        "zone": "grey",
        "ground": "Employment Decree of 12 July 2019, art. 9",
        "reason": "placement needs income, reviewed",
    }
    added = await admin.post("/console/rules", fields)
    assert added.status == 303
    found = re.fullmatch(r"/console/rules\?notice=rule-added#rule-(r-[0-9a-f]{8})", added.headers["Location"])
    assert found is not None
    rule_id = found.group(1)
    assert rule_id in {rule.id for rule in (await sqlite_world.hub.policies.rules()).rules}
    [record] = await sqlite_world.hub.audit.records(kind="console", reason="rule-add")
    assert (record.rule_id, record.policy_version) == (rule_id, 2)
    _, listed = await admin.get("/console/rules")
    assert "Employment Decree of 12 July 2019, art. 9" in listed
    refused = await admin.post("/console/rules", {**fields, "csrf": await admin.token("/console/rules"), "ground": ""})
    assert refused.status == 422


async def test_the_history_page_shows_groupings_and_rollbacks(sqlite_world: DemoWorld, admin: Browser) -> None:
    hub = sqlite_world.hub
    current = await hub.policies.rules()
    await hub.policies.replace(
        list(current.rules), [*current.groups, ("g2", "income", "money")], "test", "groups", datetime.now(UTC)
    )
    token = await admin.token("/console/rules/history")
    rolled = await admin.post("/console/rules/rollback", {"csrf": token, "version": "1", "reason": "undo"})
    assert rolled.status == 303
    status, page = await admin.get("/console/rules/history")
    text = unescape(page)
    assert status == 200
    assert "Version 3 (in force) (rollback to version 1)" in re.sub(r"<[^>]+>", "", text)
    assert "grouping added income in money (category group)" in re.sub(r"<[^>]+>|\s+(?=\s)", "", text)
    assert "grouping removed income in money (category group)" in re.sub(r"<[^>]+>|\s+(?=\s)", "", text)


async def test_only_administrators_keep_the_registry(sqlite_world: DemoWorld) -> None:
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        officer = Browser(sqlite_world, session)
        await officer.sign_in("privacy-office", sqlite_world.console_passwords["privacy-office"])
        token = await officer.token("/console/")
        for path, fields in (
            ("/console/categories", {"name": "disability", "reason": "x"}),
            ("/console/agencies/family-benefits", {"name": "X", "adapter_url": "https://x.example", "reason": "x"}),
        ):
            assert (await officer.post(path, {"csrf": token, **fields})).status == 403
    assert "disability" not in {term.name for term in await sqlite_world.hub.registry.categories()}
