"""The console in a real browser (headless Chromium through Playwright): sign in, find a person's access log
(agencies by name) and search the audit log with date-time pickers, approve a grey review and see the
requester's repeated exchange delivered and the decision on the person's page, change a rule and see the
explain form follow, suspend an agency only with a reason and a ticked confirmation, an overview that counts
unauthenticated attempts apart, a form posted without its CSRF token refused, and a privacy officer refused an
admin page. One demo world and one browser serve the module; every test takes screenshots into its own tmp_path.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
import pytest_asyncio
from aiohttp import web
from playwright.async_api import Browser, BrowserContext, Page, expect

from adapters.examples import demo_agencies as demo
from broker.cli.demo import DemoWorld, demo_world, free_port
from tests.console.browser import VIEWPORT, chromium, missing, photograph, sign_in

pytestmark = [
    pytest.mark.skipif(missing() is not None, reason=missing() or ""),
    pytest.mark.asyncio(loop_scope="module"),
]


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def world(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[DemoWorld]:
    async with demo_world(tmp_path_factory.mktemp("console") / "state") as running:
        yield running


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser() -> AsyncIterator[Browser]:
    async with chromium() as running:
        yield running


@pytest_asyncio.fixture(loop_scope="module")
async def context(browser: Browser) -> AsyncIterator[BrowserContext]:
    """A fresh browser profile per test: no cookie carries over."""
    opened = await browser.new_context(viewport=VIEWPORT)  # type: ignore[arg-type]
    yield opened
    await opened.close()


@pytest_asyncio.fixture(loop_scope="module")
async def page(context: BrowserContext) -> Page:
    return await context.new_page()


async def as_operator(page: Page, world: DemoWorld, operator: str) -> None:
    await sign_in(page, world.hub_url, operator, world.console_passwords[operator])


async def test_sign_in_shows_the_overview_and_sign_out_ends_the_session(
    page: Page, world: DemoWorld, tmp_path: Path
) -> None:
    await page.goto(f"{world.hub_url}/console/people")
    await expect(page).to_have_url(re.compile(r"/console/sign-in\?next=/console/people$"))
    await page.get_by_label("Operator id").fill("privacy-office")
    await page.get_by_label("Password").fill("not the password")
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("alert")).to_contain_text("Wrong operator id or password")
    await page.screenshot(path=str(tmp_path / "sign-in-refused.png"))

    await page.get_by_label("Operator id").fill("privacy-office")
    await page.get_by_label("Password").fill(world.console_passwords["privacy-office"])
    await page.get_by_role("button", name="Sign in").click()
    await expect(page).to_have_url(f"{world.hub_url}/console/people")  # back where the person was going
    await page.get_by_role("link", name="Overview").click()
    await expect(page.get_by_role("heading", name="Overview", exact=True)).to_be_visible()
    await expect(page.get_by_role("img", name="Exchanges per hour by outcome (UTC)")).to_be_visible()
    await expect(page.get_by_text("Signed in as privacy-office")).to_be_visible()
    await page.screenshot(path=str(tmp_path / "overview.png"), full_page=True)

    cookies = {cookie["name"]: cookie for cookie in await page.context.cookies()}
    session = cookies["crossroads_console"]
    assert session["httpOnly"] and session["sameSite"] == "Strict" and session["path"] == "/console"
    assert not session["secure"]  # the demo hub's public URL is plain http

    await page.get_by_role("button", name="Sign out").click()
    await expect(page).to_have_url(re.compile(r"/console/sign-in$"))
    await page.goto(f"{world.hub_url}/console/")
    await expect(page).to_have_url(re.compile(r"/console/sign-in"))


async def test_a_privacy_officer_finds_a_persons_access_log(page: Page, world: DemoWorld, tmp_path: Path) -> None:
    async with aiohttp.ClientSession() as session:
        question = {"subject": demo.ANNA, "category": "civil-status", "purpose": "benefit-eligibility"}
        status, _ = await world.client("family-benefits", session).call("POST", "/v1/exchanges", question)
    assert status == 200
    await as_operator(page, world, "privacy-office")
    await page.get_by_role("link", name="People").click()
    await page.get_by_label("National number").fill(demo.ANNA)
    await page.get_by_role("button", name="Open").click()
    await expect(page.get_by_role("heading", name=f"Person {demo.ANNA}")).to_be_visible()
    log = page.get_by_role("table", name=f"Exchange attempts about {demo.ANNA}")
    delivered = log.get_by_role("row").filter(has_text="family-benefits").filter(has_text="delivered")
    await expect(delivered.first).to_contain_text("civil-status")
    await expect(delivered.first).to_contain_text("population-register")
    await expect(delivered.first).to_contain_text("Family Benefits Agency")  # names, with the ids beside them
    await expect(delivered.first).to_contain_text("National Population Register")
    await page.screenshot(path=str(tmp_path / "person.png"), full_page=True)

    await page.get_by_role("link", name="Audit search").click()
    await page.get_by_label("Person (national number)").fill(demo.ANNA)
    await page.get_by_label("Outcome").select_option("delivered")
    since = page.get_by_label("From (UTC)")
    assert await since.get_attribute("type") == "datetime-local"
    await since.fill("2020-01-01T00:00")
    await page.get_by_role("button", name="Search").click()
    await expect(page).to_have_url(re.compile(r"since=2020-01-01T00%3A00"))
    await expect(page.get_by_label("From (UTC)")).to_have_value("2020-01-01T00:00")  # given back as picked
    rows = page.get_by_role("table").get_by_role("row")
    await expect(rows.filter(has_text="family-benefits").first).to_contain_text("delivered")
    await expect(rows.filter(has_text="family-benefits").first).to_contain_text("Family Benefits Agency")
    async with page.expect_download() as download:
        await page.get_by_role("link", name="Export every matching record as CSV").click()
    exported = Path(await (await download.value).path()).read_text()  # noqa: ASYNC240 -- a small file, in a test
    assert exported.splitlines()[0].startswith("seq,at,kind") and demo.ANNA in exported
    assert all(",delivered," in line for line in exported.splitlines()[1:])


async def test_an_approved_grey_review_lets_the_repeated_exchange_through(
    page: Page, world: DemoWorld, tmp_path: Path
) -> None:
    question = {"subject": demo.JAN, "category": "employment-status", "purpose": "benefit-eligibility"}
    async with aiohttp.ClientSession() as session:
        requester = world.client("family-benefits", session)
        status, waiting = await requester.call("POST", "/v1/exchanges", question)
        assert status == 202 and waiting["status"] == "pending"

        await as_operator(page, world, "privacy-office")
        await page.get_by_role("link", name="Grey-zone reviews").click()
        review = page.get_by_role("article").filter(has_text=waiting["review"][:8])
        await expect(review).to_contain_text("employment-status for benefit-eligibility")
        await review.get_by_role("button", name="Approve").click()  # no reason yet: the browser keeps the form
        assert page.url.endswith("/console/reviews") and await page.get_by_role("status").count() == 0
        await review.get_by_label("Reason for the decision (required)").fill("job-seeker file open for Jan")
        await page.screenshot(path=str(tmp_path / "review.png"), full_page=True)
        await review.get_by_role("button", name="Approve").click()
        await expect(page.get_by_role("status")).to_contain_text("The review is approved")
        await expect(page.get_by_role("article").filter(has_text=waiting["review"][:8])).to_have_count(0)

        status, delivered = await requester.call("POST", "/v1/exchanges", {**question, "review": waiting["review"]})
    assert status == 200 and delivered["zone"] == "grey" and delivered["data"]
    decided = await world.hub.reviews.get(waiting["review"])
    assert decided is not None and decided.status == "used" and decided.decided_by == "privacy-office"

    await page.goto(f"{world.hub_url}/console/people/{demo.JAN}")
    repeated = page.get_by_role("row").filter(has_text="employment-status").filter(has_text="delivered")
    await expect(repeated.first).to_contain_text(waiting["review"][:8])
    card = page.get_by_role("article").filter(has_text=waiting["review"][:8])
    await expect(card).to_contain_text("decided")
    await expect(card.locator(".decided")).to_contain_text("approved")
    await expect(card.locator(".decided")).to_contain_text("privacy officer")
    await expect(card).not_to_contain_text("job-seeker file open for Jan")  # the officer's reason stays in the queue
    await expect(card.get_by_role("button", name="Approve")).to_have_count(0)
    await page.screenshot(path=str(tmp_path / "person-after-review.png"), full_page=True)


async def test_a_rule_change_is_followed_by_the_explain_form(page: Page, world: DemoWorld, tmp_path: Path) -> None:
    await as_operator(page, world, "admin-desk")
    explain = f"{world.hub_url}/console/rules/explain"

    async def explained() -> str:
        await page.goto(explain)
        await page.get_by_label("Requesting agency").select_option("employment-office")
        await page.get_by_label("Category").fill("civil-status")
        await page.get_by_label("Purpose").select_option("job-placement")
        await page.get_by_role("button", name="Explain").click()
        return await page.locator("#decision").inner_text()

    assert "Zone: white" in await explained() and "rule r-5" in await explained()

    await page.get_by_role("link", name="Sharing rules").click()
    await page.get_by_label("Requester contains").fill("employment-office")
    await page.get_by_role("button", name="Filter").click()
    row = page.get_by_role("row").filter(has_text="r-5")
    await row.get_by_label("Reason to remove r-5").fill("placement now needs a privacy officer's look")
    await row.get_by_role("button", name="Remove r-5").click()
    await expect(page.get_by_role("status")).to_contain_text("The rule is removed")
    decision = await explained()
    assert "Zone: black" in decision and "no rule matches" in decision

    await page.goto(f"{world.hub_url}/console/rules")
    await page.get_by_label("Id", exact=True).fill("r-5-grey")
    await page.get_by_label("Requester", exact=True).fill("agency:employment-office")
    await page.get_by_label("Category", exact=True).fill("civil-status")
    await page.get_by_label("Purpose", exact=True).fill("job-placement")
    await page.get_by_label("Zone", exact=True).select_option("grey")
    await page.get_by_label("Ground", exact=False).fill("Employment Decree of 12 July 2019, art. 9")
    await page.get_by_label("Reason (required, recorded with the change)").fill("placement reviewed case by case")
    await page.get_by_role("button", name="Add the rule").click()
    await expect(page.get_by_role("status")).to_contain_text("The rule is added")
    decision = await explained()
    assert "Zone: grey" in decision and "rule r-5-grey" in decision
    await page.screenshot(path=str(tmp_path / "explain.png"), full_page=True)

    await page.get_by_role("link", name="Rule history").click()
    newest = page.get_by_role("article").first
    await expect(newest).to_contain_text("placement reviewed case by case")
    await expect(newest.locator(".added")).to_contain_text("r-5-grey")
    await page.screenshot(path=str(tmp_path / "history.png"), full_page=True)


async def test_suspending_an_agency_asks_for_a_reason_and_a_confirmation(
    page: Page, world: DemoWorld, tmp_path: Path
) -> None:
    await as_operator(page, world, "admin-desk")
    await page.goto(f"{world.hub_url}/console/agencies")
    suspend = page.locator("#suspend-municipality-leuven")
    button = suspend.get_by_role("button", name="Suspend City of Leuven")
    await suspend.get_by_label("Reason to suspend City of Leuven").fill("asked for records it has no case for")
    await button.click()  # not ticked: the browser keeps the form
    assert page.url.endswith("/console/agencies") and await page.get_by_role("status").count() == 0
    confirm = suspend.get_by_label(re.compile(r"^I confirm: while City of Leuven is suspended"))
    await confirm.evaluate("box => box.removeAttribute('required')")  # as a browser without validation sends it
    await button.click()
    await expect(page.get_by_role("alert")).to_contain_text("Tick the box to confirm")
    await expect(suspend.get_by_label("Reason to suspend City of Leuven")).to_have_value(
        "asked for records it has no case for"
    )
    await page.screenshot(path=str(tmp_path / "suspend-unconfirmed.png"), full_page=True)
    agency = await world.hub.registry.agency("municipality-leuven")
    assert agency is not None and agency.status == "active"

    await page.locator("#suspend-municipality-leuven").get_by_label(re.compile(r"^I confirm")).check()
    await page.locator("#suspend-municipality-leuven").get_by_role("button", name="Suspend City of Leuven").click()
    await expect(page.get_by_role("status")).to_contain_text("The agency is suspended")
    agency = await world.hub.registry.agency("municipality-leuven")
    assert agency is not None and agency.status == "suspended"
    await page.get_by_label("Reason to resume City of Leuven").fill("its case files were found")
    await page.get_by_role("button", name="Resume City of Leuven").click()
    await expect(page.get_by_role("status")).to_contain_text("The agency is active again")


async def test_the_overview_counts_unauthenticated_attempts_apart(page: Page, world: DemoWorld, tmp_path: Path) -> None:
    async with aiohttp.ClientSession() as session:
        async with session.post(f"{world.hub_url}/v1/exchanges", json={}) as answer:
            assert answer.status == 401
        question = {"subject": demo.ANNA, "category": "civil-status", "purpose": "benefit-eligibility"}
        status, _ = await world.client("family-benefits", session).call("POST", "/v1/exchanges", question)
    assert status == 200
    await as_operator(page, world, "privacy-office")
    requesters = page.locator("section").filter(has=page.get_by_role("heading", name="Top requesters"))
    await expect(requesters.locator("#unauthenticated")).to_contain_text("refused before authentication")
    await expect(requesters.get_by_role("img")).not_to_contain_text("none")
    await expect(requesters.get_by_role("img")).to_contain_text("Family Benefits Agency")
    await page.screenshot(path=str(tmp_path / "overview.png"), full_page=True)


async def test_a_form_without_its_csrf_token_is_refused(page: Page, world: DemoWorld, tmp_path: Path) -> None:
    await as_operator(page, world, "admin-desk")
    await page.goto(f"{world.hub_url}/console/rules")
    row = page.get_by_role("row").filter(has_text="r-1")
    await row.locator('input[name="csrf"]').evaluate("field => field.remove()")
    await row.get_by_label("Reason to remove r-1").fill("a forged form")
    await row.get_by_role("button", name="Remove r-1").click()
    await expect(page.get_by_role("heading", name="Not allowed")).to_be_visible()
    await expect(page.get_by_role("alert")).to_contain_text("not sent from a console page of this session")
    await page.screenshot(path=str(tmp_path / "csrf-refused.png"))
    assert any(rule.id == "r-1" for rule in (await world.hub.policies.rules()).rules)
    refused = await world.hub.audit.records(kind="console", reason="csrf-refused")
    assert refused and refused[-1].requester == "admin-desk" and refused[-1].outcome == "refused"


async def test_a_form_posted_from_another_site_carries_no_session(page: Page, world: DemoWorld, tmp_path: Path) -> None:
    """SameSite=Strict: a page on another site (here `localhost`, not the hub's `127.0.0.1`) that posts a
    console form gets no session cookie sent along, so it is refused even with a token copied into it."""
    await as_operator(page, world, "admin-desk")
    await page.goto(f"{world.hub_url}/console/rules")
    token = await page.locator('input[name="csrf"]').first.input_value()
    forged = (
        f'<form method="post" action="{world.hub_url}/console/rules/r-1/remove">'
        f'<input type="hidden" name="csrf" value="{token}"><input type="hidden" name="reason" value="forged">'
        '<button type="submit">Win a prize</button></form>'
    )

    async def lure(request: web.Request) -> web.Response:
        return web.Response(text=forged, content_type="text/html")

    app = web.Application()
    app.router.add_get("/", lure)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        await page.goto(f"http://localhost:{port}/")
        await page.get_by_role("button", name="Win a prize").click()
        await expect(page.get_by_role("heading", name="Signed out")).to_be_visible()
        await page.screenshot(path=str(tmp_path / "cross-site-refused.png"))
    finally:
        await runner.cleanup()
    assert any(rule.id == "r-1" for rule in (await world.hub.policies.rules()).rules)


async def test_a_privacy_officer_is_refused_an_admin_page(page: Page, world: DemoWorld, tmp_path: Path) -> None:
    await as_operator(page, world, "privacy-office")
    navigation = page.get_by_role("navigation", name="Console pages")
    await expect(navigation.get_by_role("link", name="Audit search")).to_be_visible()
    await expect(navigation.get_by_role("link", name="Sharing rules")).to_have_count(0)
    response = await page.goto(f"{world.hub_url}/console/agencies")
    assert response is not None and response.status == 403
    await expect(page.get_by_role("heading", name="Not allowed")).to_be_visible()
    await page.screenshot(path=str(tmp_path / "admin-page-refused.png"))
    refused = await world.hub.audit.records(kind="console", requester="privacy-office", reason="forbidden")
    assert refused and refused[-1].status == 403


async def test_every_main_page_renders_for_its_role(browser: Browser, world: DemoWorld, tmp_path: Path) -> None:
    written = await photograph(browser, world.hub_url, world.console_passwords, tmp_path / "pages")
    assert len(written) == 14 and all(path.stat().st_size > 5_000 for path in written)
