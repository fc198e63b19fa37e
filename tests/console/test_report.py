"""The subject access report from a person's console page, over plain HTTP on the demo world: the page's form asks
for a format and a period, the report comes back as a download in each format, the request is an audit record
naming the person, and only privacy officers may ask for it."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from html import unescape

import aiohttp
import pytest
from pypdf import PdfReader

from adapters.examples.demo_agencies import ANNA, JAN
from broker.cli.demo import DemoWorld
from tests.audit.test_report import MANDATE, OFFICERS_REASON, jan_and_anna
from tests.console.test_sessions import Browser

REPORT = f"/console/people/{JAN}/report"


@pytest.fixture
async def officer(world: DemoWorld) -> AsyncIterator[Browser]:
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        browser = Browser(world, session)
        signed_in = await browser.sign_in("privacy-office", world.console_passwords["privacy-office"])
        assert signed_in.status == 303
        yield browser


async def download(browser: Browser, query: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
    async with browser.session.get(browser.url + REPORT, params=query, allow_redirects=False) as response:
        return response.status, dict(response.headers), await response.read()


async def test_the_person_page_gives_the_report_as_a_download(
    world: DemoWorld, officer: Browser, session: aiohttp.ClientSession
) -> None:
    scenario = await jan_and_anna(world, session)
    status, page = await officer.get(f"/console/people/{JAN}")
    assert status == 200 and f'action="{REPORT}"' in page and 'name="since"' in page and 'name="format"' in page
    since = scenario.started.strftime("%Y-%m-%dT%H:%M:%S")  # as a browser's datetime-local field sends it

    status, headers, body = await download(officer, {"format": "csv", "since": since, "until": ""})
    assert status == 200 and headers["Content-Type"] == "text/csv; charset=utf-8"
    assert headers["Content-Disposition"].startswith('attachment; filename="subject-access-report-')
    assert headers["Content-Disposition"].endswith('.csv"') and JAN not in headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(body.decode())))
    assert {row["item"]: row["value"] for row in rows if row["section"] == "report"}["generated_by"] == "privacy-office"
    [fraud] = [row for row in rows if row["purpose"] == "fraud-investigation"]
    assert fraud["ground"].startswith(MANDATE) and fraud["requester_id"] == "family-benefits"

    status, headers, body = await download(officer, {"format": "html", "since": since})
    shown = unescape(body.decode())
    assert status == 200 and headers["Content-Type"] == "text/html; charset=utf-8"
    assert MANDATE in shown and OFFICERS_REASON not in shown and ANNA not in shown
    status, headers, body = await download(officer, {"format": "pdf", "since": since})
    assert status == 200 and headers["Content-Type"] == "application/pdf" and body.startswith(b"%PDF")
    assert JAN in " ".join(page.extract_text() for page in PdfReader(io.BytesIO(body)).pages)

    status, _, body = await download(officer, {"format": "pdf"})
    assert status == 422 and b"the start of its period" in body
    records = await world.hub.audit.records(kind="console", requester="privacy-office", subject=JAN)
    assert [(r.reason, r.status) for r in records if r.reason != "person"] == [("subject-report", 200)] * 3 + [
        ("invalid", 422)
    ]


async def test_only_privacy_officers_have_reports(world: DemoWorld) -> None:
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as session:
        admin = Browser(world, session)
        assert (await admin.sign_in("admin-desk", world.console_passwords["admin-desk"])).status == 303
        status, _, body = await download(admin, {"format": "csv", "since": "2026-01-01T00:00"})
    assert status == 403 and b"section" not in body
    records = await world.hub.audit.records(kind="console", requester="admin-desk")
    assert [(r.status, r.outcome) for r in records if r.reason != "sign-in"] == [(403, "refused")]
