"""What administrators and privacy officers tripped on in the console (issue 19), over plain HTTP: agencies shown
by their registered names (escaped, ids kept beside them), date-time pickers holding what the server reads,
decided reviews on a person's page without the officer's reason, suspending an agency and revoking a key only
with a reason and a ticked confirmation, and attempts refused before authentication kept out of the top
requesters.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import aiohttp
import pytest

from adapters.examples import demo_agencies as demo
from broker.audit.anomalies import ANOMALY_PERIOD
from broker.cli.demo import DemoWorld
from broker.console.app import picker
from broker.console.overview import named, requesters
from broker.console.pages import agency_label
from tests.console.test_sessions import Browser

NAMES = {"family-benefits": "Family Benefits Agency", "odd": "<b>Odd & Co</b>"}


@pytest.fixture
async def browser(world: DemoWorld) -> AsyncIterator[Browser]:
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        yield Browser(world, session)


async def signed_in(browser: Browser, world: DemoWorld, operator: str) -> Browser:
    answer = await browser.sign_in(operator, world.console_passwords[operator])
    assert answer.status == 303
    return browser


def test_an_agency_reads_as_its_name_with_its_id_beside_it() -> None:
    assert agency_label(NAMES, "family-benefits") == 'Family Benefits Agency <small class="id">family-benefits</small>'
    assert agency_label(NAMES, "agency:family-benefits") == (
        'Family Benefits Agency <small class="id">agency:family-benefits</small>'
    )
    assert agency_label(NAMES, "odd") == '&lt;b&gt;Odd &amp; Co&lt;/b&gt; <small class="id">odd</small>'
    assert agency_label(NAMES, "admin-desk") == "admin-desk"  # an operator, a role: the id alone
    assert agency_label(NAMES, "<x>") == "&lt;x&gt;"
    assert agency_label(NAMES, None) == agency_label(NAMES, "") == "—"


def test_a_picker_holds_utc_without_an_offset() -> None:
    assert picker("2026-11-23T10:00Z") == "2026-11-23T10:00:00"
    assert picker("2026-11-23T11:00:30+01:00") == "2026-11-23T10:00:30"
    assert picker("2026-11-23T10:00") == "2026-11-23T10:00:00"  # a browser's date-time, read as UTC
    assert picker(datetime(2026, 11, 23, 10, tzinfo=UTC)) == "2026-11-23T10:00:00"
    assert picker("yesterday") == picker(None) == ""


def test_attempts_without_a_requester_are_counted_apart_from_the_top_requesters() -> None:
    rows = [("family-benefits", 4), (None, 3), ("", 1), ("tax-authority", 5)]
    assert requesters(rows) == ([("tax-authority", 5), ("family-benefits", 4)], 4)
    assert requesters([("a", 1), ("b", 1), ("c", 1)], most=2) == ([("a", 1), ("b", 1)], 0)
    assert named([("family-benefits", 4), ("gone", 1)], NAMES) == [("Family Benefits Agency", 4), ("gone", 1)]


async def test_pages_show_agency_names_and_escape_them(world: DemoWorld, browser: Browser) -> None:
    async with aiohttp.ClientSession() as session:
        question = {"subject": demo.ANNA, "category": "civil-status", "purpose": "benefit-eligibility"}
        status, _ = await world.client("family-benefits", session).call("POST", "/v1/exchanges", question)
    assert status == 200
    admin = await signed_in(browser, world, "admin-desk")
    token = await admin.token("/console/agencies")
    fields = {"csrf": token, "name": "<i>Family</i> & Benefits", "adapter_url": world.adapter_urls["family-benefits"]}
    renamed = await admin.post("/console/agencies/family-benefits", {**fields, "reason": "a test of escaping"})
    assert renamed.status == 303
    escaped = '&lt;i&gt;Family&lt;/i&gt; &amp; Benefits <small class="id">family-benefits</small>'
    status, rules = await admin.get("/console/rules?requester=family")
    assert status == 200 and escaped.replace("family-benefits<", "agency:family-benefits<") in rules
    officer = await signed_in(browser, world, "privacy-office")
    status, audit = await officer.get(f"/console/audit?subject={demo.ANNA}&kind=exchange")
    assert status == 200 and escaped in audit and "<i>Family</i>" not in audit
    population = 'National Population Register <small class="id">population-register</small>'
    assert population in audit  # the holder
    status, overview = await officer.get("/console/")
    assert status == 200 and "&lt;i&gt;Family&lt;/i&gt; &amp; Benefits: 1</title>" in overview


async def test_date_time_fields_are_pickers_holding_what_the_server_reads(world: DemoWorld, browser: Browser) -> None:
    officer = await signed_in(browser, world, "privacy-office")
    status, audit = await officer.get("/console/audit?since=2026-11-23T11:00:00%2B01:00&until=2026-11-24T10:00")
    assert status == 200
    assert re.search(r'name="since" type="datetime-local" step="1" value="2026-11-23T10:00:00"', audit)
    assert re.search(r'name="until" type="datetime-local" step="1" value="2026-11-24T10:00:00"', audit)
    status, _ = await officer.get("/console/audit?since=2026-11-23T10:00:00Z")  # what it accepted before
    assert status == 200
    status, anomalies = await officer.get("/console/anomalies")
    assert status == 200 and "From (UTC)" in anomalies
    since = re.search(r'name="since" type="datetime-local" step="1" value="([^"]+)"', anomalies)
    until = re.search(r'name="until" type="datetime-local" step="1" value="([^"]+)"', anomalies)
    assert since is not None and until is not None
    assert datetime.fromisoformat(until.group(1)) - datetime.fromisoformat(since.group(1)) == ANOMALY_PERIOD
    status, again = await officer.get(f"/console/anomalies?since={since.group(1)}")  # the picker's value, sent back
    assert status == 200 and f'value="{since.group(1)}"' in again


async def test_a_persons_page_lists_decided_reviews_newest_first(world: DemoWorld, browser: Browser) -> None:
    questions = [
        {"subject": demo.JAN, "category": "employment-status", "purpose": "benefit-eligibility"},
        {"subject": demo.JAN, "category": "employment-status", "purpose": "benefit-eligibility"},
    ]
    async with aiohttp.ClientSession() as session:
        opened = []
        for question in questions:
            status, waiting = await world.client("family-benefits", session).call("POST", "/v1/exchanges", question)
            assert status == 202
            opened.append(waiting["review"])
    first, second = opened
    officer = await signed_in(browser, world, "privacy-office")
    token = await officer.token("/console/reviews")
    fields = {"csrf": token, "decision": "reject", "reason": "no open job-seeker file for this person"}
    decided = await officer.post(f"/console/reviews/{first}/decision", fields)
    assert decided.status == 303
    status, person = await officer.get(f"/console/people/{demo.JAN}")
    assert status == 200
    reviews = person[person.index('id="reviews-heading"') :]
    assert reviews.index(second[:8]) < reviews.index(first[:8])  # newest first
    pending, decided_card = reviews.split(f'id="review-{first}"')
    assert f"/console/reviews/{second}/decision" in pending  # the pending one keeps its form
    assert f"/console/reviews/{first}/decision" not in decided_card
    assert "<dd>rejected</dd>" in decided_card and "<dd>privacy officer</dd>" in decided_card
    assert "no open job-seeker file" not in person and "privacy-office" not in decided_card


async def test_suspending_needs_a_reason_and_a_confirmation(world: DemoWorld, browser: Browser) -> None:
    admin = await signed_in(browser, world, "admin-desk")
    token = await admin.token("/console/agencies")
    path = "/console/agencies/health-insurance/status"
    asked = {"csrf": token, "status": "suspended"}
    async with admin.session.post(admin.url + path, data=asked, allow_redirects=False) as answer:
        assert answer.status == 422
        page = await answer.text()
    assert 'id="suspend-health-insurance-error"' in page and "Give the reason to suspend this agency" in page
    async with admin.session.post(admin.url + path, data={**asked, "reason": "fraud inquiry"}) as answer:
        assert answer.status == 422
        page = await answer.text()
    assert "Tick the box to confirm" in page and 'value="fraud inquiry"' in page  # the reason given is kept
    agency = await world.hub.registry.agency("health-insurance")
    assert agency is not None and agency.status == "active"

    suspended = await admin.post(path, {**asked, "reason": "fraud inquiry", "confirm": "on"})
    assert suspended.status == 303
    agency = await world.hub.registry.agency("health-insurance")
    assert agency is not None and agency.status == "suspended"
    resumed = await admin.post(path, {"csrf": token, "status": "active"})  # resuming cuts nobody off
    assert resumed.status == 303
    records = await world.hub.audit.records(kind="console", holder="health-insurance")
    assert [(record.status, record.outcome, record.reason) for record in records] == [
        (422, "refused", "unconfirmed"),
        (422, "refused", "unconfirmed"),
        (303, "recorded", "fraud inquiry"),
        (303, "recorded", "agency-status"),
    ]


async def test_revoking_a_key_needs_a_confirmation(world: DemoWorld, browser: Browser) -> None:
    admin = await signed_in(browser, world, "admin-desk")
    token = await admin.token("/console/agencies")
    key_id = world.keys["tax-authority"].key_id
    fields = {"csrf": token, "agency": "tax-authority", "reason": "laptop stolen"}
    unconfirmed = await admin.post(f"/console/keys/{key_id}/revoke", fields)
    assert unconfirmed.status == 422
    key = await world.hub.directory.key(key_id)
    assert key is not None and key.status == "active"
    revoked = await admin.post(f"/console/keys/{key_id}/revoke", {**fields, "confirm": "on"})
    assert revoked.status == 303
    key = await world.hub.directory.key(key_id)
    assert key is not None and key.status == "revoked"


async def test_the_overview_counts_unauthenticated_attempts_apart(world: DemoWorld, browser: Browser) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{world.hub_url}/v1/exchanges", json={"subject": demo.ANNA}) as answer:
            assert answer.status == 401
        question = {"subject": demo.ANNA, "category": "civil-status", "purpose": "benefit-eligibility"}
        status, _ = await world.client("family-benefits", session).call("POST", "/v1/exchanges", question)
    assert status == 200
    officer = await signed_in(browser, world, "privacy-office")
    status, overview = await officer.get("/console/")
    assert status == 200
    requesters_section = overview[overview.index('id="requesters-heading"') :]
    assert "Family Benefits Agency: 1</title>" in requesters_section and "none" not in requesters_section
    assert "1 attempt refused before authentication (unauthenticated" in requesters_section
