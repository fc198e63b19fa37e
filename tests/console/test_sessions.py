"""The console over plain HTTP, on SQLite and PostgreSQL: sign-in and its lock-out, session cookies, CSRF
tokens, roles, the headers every page carries, the pages reading each store, and an audit record for every
sign-in and every action.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta

import aiohttp
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from adapters.examples import demo_agencies as demo
from broker.accounts.credentials import token_id
from broker.base.signing import public_key_pem
from broker.cli.demo import DemoWorld, run_scenario
from broker.notifications.outbox import Notification

CSRF = re.compile(r'name="csrf" value="([^"]+)"')


class Browser:
    """A cookie-keeping HTTP client that fills in console forms the way a browser would."""

    def __init__(self, world: DemoWorld, session: aiohttp.ClientSession) -> None:
        self.url, self.session = world.hub_url, session

    async def get(self, path: str) -> tuple[int, str]:
        async with self.session.get(self.url + path, allow_redirects=False) as response:
            return response.status, await response.text()

    async def token(self, path: str) -> str:
        _, page = await self.get(path)
        found = CSRF.search(page)
        assert found is not None, page
        return found.group(1)

    async def post(self, path: str, fields: dict[str, str]) -> aiohttp.ClientResponse:
        async with self.session.post(self.url + path, data=fields, allow_redirects=False) as response:
            await response.read()
            return response

    async def sign_in(self, operator: str, password: str) -> aiohttp.ClientResponse:
        token = await self.token("/console/sign-in")
        return await self.post("/console/sign-in", {"csrf": token, "operator": operator, "password": password})


@pytest.fixture
async def browser(world: DemoWorld) -> AsyncIterator[Browser]:
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        yield Browser(world, session)


async def test_sign_in_opens_a_session_kept_only_as_a_hash(world: DemoWorld, browser: Browser) -> None:
    answer = await browser.sign_in("privacy-office", world.console_passwords["privacy-office"])
    assert answer.status == 303 and answer.headers["Location"] == "/console/"
    cookie = answer.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/console" in cookie
    assert "Secure" not in cookie  # the demo hub's public URL is http
    token = answer.cookies["crossroads_console"].value
    assert await world.hub.console.session(token) is None
    stored = await world.hub.console.session(token_id(token))
    assert stored is not None and stored.operator_id == "privacy-office"
    status, page = await browser.get("/console/")
    assert status == 200 and "Signed in as <strong>privacy-office</strong>" in page
    [record] = await world.hub.audit.records(kind="console", reason="sign-in")
    assert (record.requester, record.key_id, record.status, record.outcome) == (
        "privacy-office",
        "console",
        303,
        "recorded",
    )


async def test_sign_in_leads_only_to_a_console_page_of_this_hub(world: DemoWorld, browser: Browser) -> None:
    """A `next` that is not a plain console path (a CR/LF that would split the redirect's header, another host,
    a control or non-ASCII character) leads to the console's home page, and the sign-in is answered and audited
    as the redirect the browser received."""
    password = world.console_passwords["admin-desk"]
    hostile = (
        "/console/\r\nSet-Cookie: crossroads_console=forged",
        "/console/rules\nLocation: https://evil.example/",
        "//evil.example/console/",
        "/console//evil.example",
        "https://evil.example/console/",
        "/console/\\evil.example",
        "/console/\x00",
        "/console/\x7f",
        "/console/r\u00e8gles",
        "/console/ rules",
    )
    for target in hostile:
        token = await browser.token("/console/sign-in")
        fields = {"csrf": token, "operator": "admin-desk", "password": password, "next": target}
        answer = await browser.post("/console/sign-in", fields)
        assert (answer.status, answer.headers["Location"]) == (303, "/console/"), target
        assert not any("forged" in cookie for cookie in answer.headers.getall("Set-Cookie", []))
    token = await browser.token("/console/sign-in")
    fields = {"csrf": token, "operator": "admin-desk", "password": password, "next": "/console/rules?zone=grey"}
    kept = await browser.post("/console/sign-in", fields)
    assert kept.headers["Location"] == "/console/rules?zone=grey"
    records = await world.hub.audit.records(kind="console", requester="admin-desk")
    assert [(record.reason, record.status) for record in records] == [("sign-in", 303)] * (len(hostile) + 1)


async def test_five_failures_lock_the_operator_id_out(world: DemoWorld, browser: Browser) -> None:
    for _ in range(5):
        answer = await browser.sign_in("admin-desk", "wrong password, try again")
        assert answer.status == 401
    answer = await browser.sign_in("admin-desk", world.console_passwords["admin-desk"])
    assert answer.status == 429 and "crossroads_console" not in answer.cookies
    _, page = await browser.get("/console/")
    assert "Too many failed sign-ins" not in page  # the lock-out page was the answer, not a session
    other = await browser.sign_in("privacy-office", world.console_passwords["privacy-office"])
    assert other.status == 303  # another operator id is not locked
    failed = await world.hub.audit.records(kind="console", requester="admin-desk")
    assert [record.reason for record in failed] == ["sign-in-failed"] * 5 + ["locked-out"]
    assert {record.outcome for record in failed} == {"refused"}


async def test_failures_lock_an_operator_id_out_from_their_address_only(world: DemoWorld, browser: Browser) -> None:
    """A stranger's five wrong passwords lock the operator id out of the stranger's address, not the operator's
    own; an administrator sees the lock and lifts it, and that is recorded."""
    password = world.console_passwords["privacy-office"]
    for _ in range(5):
        assert (await browser.sign_in("privacy-office", "a stranger's guess")).status == 401
    assert (await browser.sign_in("privacy-office", password)).status == 429
    async with elsewhere(world) as officer, elsewhere(world) as admin:
        assert (await officer.sign_in("privacy-office", password)).status == 303
        assert (await admin.sign_in("admin-desk", world.console_passwords["admin-desk"])).status == 303
        status, page = await admin.get("/console/sign-in-locks")
        assert status == 200 and re.search(r"privacy-office</th><td>127\.0\.0\.1</td><td>5</td>", page)
        token = await admin.token("/console/sign-in-locks")
        fields = {"csrf": token, "operator": "privacy-office", "peer": "127.0.0.1"}
        unlocked = await admin.post("/console/sign-in-locks/unlock", fields)
        assert unlocked.status == 303 and unlocked.headers["Location"] == "/console/sign-in-locks?notice=unlocked"
    assert (await browser.sign_in("privacy-office", password)).status == 303
    [record] = await world.hub.audit.records(kind="console", reason="sign-in-unlock")
    assert (record.requester, record.holder, record.outcome) == ("admin-desk", "privacy-office", "recorded")


@asynccontextmanager
async def elsewhere(world: DemoWorld) -> AsyncIterator[Browser]:
    """A browser on another address of the loopback network (127.0.0.2): another peer to the hub."""
    connector = aiohttp.TCPConnector(local_addr=("127.0.0.2", 0))
    async with aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        yield Browser(world, session)


async def test_an_unknown_operator_fails_like_a_wrong_password(world: DemoWorld, browser: Browser) -> None:
    answer = await browser.sign_in("nobody-here", "some password or other")
    assert answer.status == 401
    citizen = await browser.sign_in("citizen-portal", "the portal has no console password")
    assert citizen.status == 401  # a citizen_portal operator is a tool, never a console user
    reasons = [record.reason for record in await world.hub.audit.records(kind="console")]
    assert reasons == ["sign-in-failed", "sign-in-failed"]


async def test_a_sign_in_form_without_its_token_is_refused(world: DemoWorld, browser: Browser) -> None:
    password = world.console_passwords["admin-desk"]
    answer = await browser.post("/console/sign-in", {"csrf": "forged", "operator": "admin-desk", "password": password})
    assert answer.status == 403 and "crossroads_console" not in answer.cookies
    [record] = await world.hub.audit.records(kind="console")
    assert record.reason == "csrf-refused"


async def test_every_post_needs_the_sessions_token(world: DemoWorld, browser: Browser) -> None:
    await browser.sign_in("admin-desk", world.console_passwords["admin-desk"])
    forged = await browser.post("/console/rules/r-1/remove", {"reason": "no token"})
    wrong = await browser.post("/console/rules/r-1/remove", {"reason": "wrong token", "csrf": "x" * 43})
    assert forged.status == wrong.status == 403
    assert any(rule.id == "r-1" for rule in (await world.hub.policies.rules()).rules)
    token = await browser.token("/console/rules")
    done = await browser.post("/console/rules/r-1/remove", {"reason": "retired", "csrf": token})
    assert done.status == 303 and done.headers["Location"] == "/console/rules?notice=rule-removed"
    assert all(rule.id != "r-1" for rule in (await world.hub.policies.rules()).rules)
    [removal] = await world.hub.audit.records(kind="console", reason="rule-remove")
    assert removal.rule_id == "r-1" and removal.policy_version == 2 and removal.requester == "admin-desk"
    out = await browser.post("/console/sign-out", {"csrf": token})
    assert out.status == 303
    status, _ = await browser.get("/console/rules")
    assert status == 303  # to the sign-in page: the session is closed


async def test_roles_decide_which_pages_open(world: DemoWorld, browser: Browser) -> None:
    await browser.sign_in("admin-desk", world.console_passwords["admin-desk"])
    for path in ("/console/audit", f"/console/people/{demo.ANNA}", "/console/reviews", "/console/chain"):
        status, _ = await browser.get(path)
        assert status == 403, path
    for path in ("/console/rules", "/console/agencies", "/console/dead-letters", "/console/rules/history"):
        status, _ = await browser.get(path)
        assert status == 200, path
    status, _ = await browser.get("/console/no-such-page")
    assert status == 404


async def test_pages_keep_to_themselves(world: DemoWorld, browser: Browser) -> None:
    async with browser.session.get(world.hub_url + "/console/sign-in") as response:
        headers = response.headers
        page = await response.text()
    assert "script-src" not in headers["Content-Security-Policy"]  # nothing but default-src 'none' for scripts
    assert "default-src 'none'" in headers["Content-Security-Policy"]
    assert headers["X-Frame-Options"] == "DENY" and headers["Cache-Control"] == "no-store"
    assert "Signature" not in headers  # not an API answer: the signing middleware let it through
    assert "<script" not in page and "http" not in re.sub(r'(action|href)="/console[^"]*"', "", page)
    async with browser.session.get(world.hub_url + "/console/static/console.css") as response:
        assert response.status == 200 and response.content_type == "text/css"
    async with browser.session.get(world.hub_url + "/console", allow_redirects=False) as response:
        assert response.status == 308 and response.headers["Location"] == "/console/"


async def test_the_privacy_officers_pages_read_the_store(world: DemoWorld, browser: Browser) -> None:
    await run_scenario(world)
    await browser.sign_in("privacy-office", world.console_passwords["privacy-office"])
    status, overview = await browser.get("/console/")
    assert status == 200
    assert ">Refusals by reason</title>" in overview and "no-consent: " in overview
    assert re.search(r"Family Benefits Agency: \d+</title>", overview)
    status, person = await browser.get(f"/console/people/{demo.JAN}")
    assert status == 200 and "consent-refused" in person and "portal session 2026-03-02/118" in person
    status, person = await browser.get(f"/console/people/{demo.ANNA}")  # a delivery says on what ground
    assert status == 200 and "Family Benefits Decree of 27 April 2018, art. 4;" in person and "(rule r-1 v1)" in person
    status, audit = await browser.get(f"/console/audit?subject={demo.ANNA}&outcome=delivered&limit=2")
    assert status == 200 and "Next page" in audit and audit.count('<td class="time">') == 2
    status, export = await browser.get(f"/console/audit.csv?subject={demo.ANNA}")
    assert status == 200 and len(export.splitlines()) > 3
    status, bad = await browser.get("/console/audit?since=yesterday")
    assert status == 422 and "RFC 3339" in bad
    status, emergencies = await browser.get("/console/emergencies")
    assert status == 200 and "house fire" in emergencies
    status, anomalies = await browser.get("/console/anomalies")
    assert status == 200 and "emergency-access" in anomalies
    status, chain = await browser.get("/console/chain?verify=1")
    assert status == 200 and "The chain verifies" in chain
    viewed = await world.hub.audit.records(kind="console", reason="person", subject=demo.JAN)
    assert len(viewed) == 1 and viewed[0].requester == "privacy-office"


async def test_an_emergency_review_is_decided_from_its_queue(world: DemoWorld, browser: Browser) -> None:
    await run_scenario(world)
    [review] = [review for review in await world.hub.reviews.with_status("pending") if review.kind == "emergency"]
    await browser.sign_in("privacy-office", world.console_passwords["privacy-office"])
    token = await browser.token("/console/emergencies")
    empty = await browser.post(f"/console/reviews/{review.id}/decision", {"csrf": token, "decision": "approve"})
    assert empty.status == 422
    fields = {"csrf": token, "decision": "approve", "reason": "the fire brigade confirmed the fire"}
    decided = await browser.post(f"/console/reviews/{review.id}/decision", fields)
    assert decided.status == 303 and decided.headers["Location"] == "/console/emergencies?notice=review-approved"
    again = await browser.post(f"/console/reviews/{review.id}/decision", fields)
    assert again.status == 409
    found = await world.hub.reviews.get(review.id)
    assert found is not None and found.status == "approved" and found.decided_by == "privacy-office"
    [record] = await world.hub.audit.records(kind="console", reason="review-decision")
    assert record.review_id == review.id and record.subject == review.subject


async def test_agencies_are_suspended_and_their_keys_revoked(world: DemoWorld, browser: Browser) -> None:
    await browser.sign_in("admin-desk", world.console_passwords["admin-desk"])
    token = await browser.token("/console/agencies")
    suspension = {"csrf": token, "status": "suspended", "reason": "fraud inquiry", "confirm": "on"}
    suspended = await browser.post("/console/agencies/health-insurance/status", suspension)
    assert suspended.status == 303
    agency = await world.hub.directory.agency("health-insurance")
    assert agency is not None and agency.status == "suspended"
    key_id = world.keys["health-insurance"].key_id
    revoked = await browser.post(
        f"/console/keys/{key_id}/revoke",
        {"csrf": token, "agency": "health-insurance", "reason": "laptop stolen", "confirm": "on"},
    )
    assert revoked.status == 303
    key = await world.hub.directory.key(key_id)
    assert key is not None and key.status == "revoked"
    records = await world.hub.audit.records(kind="console", holder="health-insurance")
    assert [record.reason for record in records] == ["fraud inquiry", "key-revoke"]
    assert records[0].at <= datetime.now(UTC)


async def test_an_agency_is_registered_and_its_key_rotated(world: DemoWorld, browser: Browser) -> None:
    first, second = (public_key_pem(Ed25519PrivateKey.generate().public_key()) for _ in range(2))
    await browser.sign_in("admin-desk", world.console_passwords["admin-desk"])
    token = await browser.token("/console/agencies")
    fields = {
        "csrf": token,
        "id": "pension-service",
        "name": "Federal Pension Service",
        "adapter_url": "http://127.0.0.1:9",
        "key_id": "pension-service-2026",
        "public_key_pem": first,
    }
    registered = await browser.post("/console/agencies", fields)
    assert registered.status == 303
    again = await browser.post("/console/agencies", fields)
    assert again.status == 409
    rotation = {"csrf": token, "key_id": "pension-service-2027", "public_key_pem": second, "overlap_s": "0"}
    rotated = await browser.post("/console/agencies/pension-service/keys", rotation)
    assert rotated.status == 303
    keys = {key.key_id: key for key in await world.hub.directory.keys_of("pension-service")}
    assert set(keys) == {"pension-service-2026", "pension-service-2027"}
    assert keys["pension-service-2026"].valid_until is not None and keys["pension-service-2027"].valid_until is None
    status, page = await browser.get("/console/agencies")
    assert status == 200 and "Federal Pension Service" in page and "pension-service-2027" in page
    records = await world.hub.audit.records(kind="console", holder="pension-service")
    assert [(record.reason, record.status) for record in records] == [
        ("agency-register", 303),
        ("conflict", 409),
        ("key-rotate", 303),
    ]


async def test_dead_letters_are_listed_and_replayed(world: DemoWorld, browser: Browser) -> None:
    outbox = world.hub.notifications.outbox
    long_ago = datetime.now(UTC) - timedelta(days=2)  # older than any delivery may get: dead at its first failure
    await outbox.publish(
        Notification("n-console-1", "population-register", demo.ANNA, "civil-status", "updated", None, long_ago),
        ["gone-agency"],
    )
    world.hub.notifications.wake.set()
    for _ in range(200):
        if await outbox.dead_letters():
            break
        await asyncio.sleep(0.05)
    [letter] = await outbox.dead_letters()
    await browser.sign_in("admin-desk", world.console_passwords["admin-desk"])
    status, page = await browser.get("/console/dead-letters")
    assert status == 200 and "gone-agency" in page and f'value="{letter.id}"' in page
    token = await browser.token("/console/dead-letters")
    nothing = await browser.post("/console/dead-letters/replay", {"csrf": token})
    assert nothing.status == 422
    replayed = await browser.post("/console/dead-letters/replay", {"csrf": token, "delivery": str(letter.id)})
    assert replayed.status == 303 and replayed.headers["Location"] == "/console/dead-letters?notice=replayed"
    assert letter.id not in {dead.id for dead in await outbox.dead_letters()}
    [record] = await world.hub.audit.records(kind="console", reason="dead-letter-replay")
    assert record.requester == "admin-desk" and record.outcome == "recorded"
