"""The subject access report (broker/reports/): built from a world's real services after real exchanges, it lists each
attempt with its ground, the person's consents and refusals, a decided review (its decider's role, never the
officer's reason), the agencies told of a change, and confidential-purpose accesses still under embargo, marked;
another person's data never appears; the period bounds it; each format (HTML, CSV, PDF) reads back."""

from __future__ import annotations

import asyncio
import csv
import io
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from html import unescape

import aiohttp
import pytest
from pypdf import PdfReader

from adapters.client import HubProblem
from adapters.examples.demo_agencies import ANNA, JAN
from broker.audit.queries import moment
from broker.base import errors
from broker.cli.demo import DemoWorld
from broker.reports.gather import gather
from broker.reports.render import csv_bytes, html, pdf, readable
from broker.reports.report import Access, SubjectReport, Told, consent_end, overlaps, period
from consent.matching import Consent, Ending
from directory.store import PurposeEntry

MANDATE = "Social Criminal Code, art. 54 (social inspectors' powers of investigation)"
MEANS_TEST = "Family Benefits Decree of 27 April 2018, art. 18 (means test)"
OFFICERS_REASON = "private: the officer's own note on Jan's file"


@dataclass(frozen=True)
class Scenario:
    """What happened to Jan (and, around him, to Anna) between `started` and `ended`."""

    started: datetime
    ended: datetime
    fraud_exchange: str
    anna_exchange: str


async def jan_and_anna(world: DemoWorld, session: aiohttp.ClientSession) -> Scenario:
    """Through the hub's API: a grey request about Jan approved by the privacy officer and repeated, his refusal
    stopping a consent-based request, a fraud investigation (a confidential purpose) delivered, and the register
    telling the agencies his civil status changed; an exchange and a change notification about Anna."""
    started = datetime.now(UTC)
    agency, officer = world.client("family-benefits", session), world.client("privacy-office", session)
    register = world.client("population-register", session)
    pending = await agency.exchange(JAN, "employment-status", "benefit-eligibility", justification="allowance file")
    assert pending.status == 202 and pending.review is not None
    await officer.call(
        "POST", f"/v1/reviews/{pending.review}/decision", {"decision": "approve", "reason": OFFICERS_REASON}
    )
    assert (await agency.repeat_with_review(pending)).status == 200
    with pytest.raises(HubProblem):  # his refusal of family-benefits beats his consent
        await agency.exchange(JAN, "income", "benefit-eligibility")
    fraud = await agency.exchange(JAN, "income", "fraud-investigation")
    anna = await agency.exchange(ANNA, "civil-status", "benefit-eligibility")
    for subject in (JAN, ANNA):
        change = {"subject": subject, "category": "civil-status", "event": "updated", "ref": f"move-{subject}"}
        await register.call("POST", "/v1/notifications", change)
    ended = datetime.now(UTC) + timedelta(seconds=1)
    for _ in range(200):  # the outbox delivers within moments; wait at most twenty seconds
        deliveries = await world.hub.notifications.outbox.about(JAN, started, ended)
        if deliveries and all(delivery.status == "delivered" for delivery in deliveries):
            break
        await asyncio.sleep(0.1)
    return Scenario(started, ended, fraud.exchange, anna.exchange)


async def test_the_report_tells_everything_about_the_person_and_nothing_else(
    world: DemoWorld, session: aiohttp.ClientSession
) -> None:
    scenario = await jan_and_anna(world, session)
    report = await gather(world.hub, JAN, scenario.started, scenario.ended, "privacy-office", datetime.now(UTC))

    attempts = [(a.requester, a.category, a.purpose, a.outcome, a.rule_id, a.ground) for a in report.accesses]
    assert [attempt[:5] for attempt in attempts] == [
        ("family-benefits", "employment-status", "benefit-eligibility", "pending", "r-3"),
        ("family-benefits", "employment-status", "benefit-eligibility", "delivered", "r-3"),
        ("family-benefits", "income", "benefit-eligibility", "refused", "r-2"),
        ("family-benefits", "income", "fraud-investigation", "delivered", "r-mandate-1"),
    ]
    assert attempts[2][5].startswith(MEANS_TEST) and attempts[3][5].startswith(MANDATE)
    assert report.accesses[2].reason == "consent-refused"
    [consent] = report.consents
    assert (consent.grantee, consent.withdrawal) == ("family-benefits", None)
    [refusal] = report.refusals
    assert (refusal.agency, refusal.lift) == ("family-benefits", None)
    [review] = report.reviews
    assert (review.kind, review.status, review.decider_role) == ("grey", "used", "privacy_officer")
    told = {(t.holder, t.category, t.event, t.recipient, t.status) for t in report.told}
    assert told and all(t[:3] == ("population-register", "civil-status", "updated") for t in told)
    assert {t[4] for t in told} == {"delivered"} and "family-benefits" in {t[3] for t in told}
    assert report.agencies["family-benefits"] == "Family Benefits Agency"
    referenced = {(reference.agency, reference.kind, reference.name) for reference in report.references}
    assert ("tax-authority", "holding", "income") in referenced
    assert "family-benefits" in {agency for agency, kind, _ in referenced if kind == "relationship"}
    n = len(report.references)

    page = unescape((await asyncio.to_thread(html, report)).decode())  # renderers read their files: off the loop
    assert "Family Benefits Agency (family-benefits)" in page and MANDATE in page and "r-mandate-1 v1" in page
    embargo_ends = readable(report.accesses[3].at + timedelta(days=365))  # the demo's embargo on fraud investigations
    assert f"confidential purpose, under embargo until {embargo_ends}" in page
    assert "National Population Register (population-register)" in page and "privacy officer" in page
    assert OFFICERS_REASON not in page and ANNA not in page and "move-" not in page
    rows = list(csv.DictReader(io.StringIO((await asyncio.to_thread(csv_bytes, report)).decode())))
    assert [row["section"] for row in rows[:6]] == ["report"] * 6
    assert {row["item"]: row["value"] for row in rows[:6]}["subject"] == JAN
    sections = [row["section"] for row in rows[6:]]
    assert sections == ["reference"] * n + ["access"] * 4 + ["consent", "refusal", "review"] + ["notification"] * len(
        told
    )
    fraud = rows[6 + n + 3]
    assert (fraud["requester"], fraud["requester_id"], fraud["rule"]) == (
        "Family Benefits Agency",
        "family-benefits",
        "r-mandate-1 v1",
    )
    assert fraud["ground"].startswith(MANDATE) and "confidential purpose" in fraud["note"]
    assert [row["note"] for row in rows[6 + n : 9 + n]] == ["", "", ""]
    text = _pdf_text(await asyncio.to_thread(pdf, report))
    for expected in (
        "Subject access report",
        JAN,
        "Which agencies hold data",
        "Who asked for your data",
        "Your refusals",
    ):
        assert expected in text, expected
    assert "Social Criminal Code, art. 54" in text and OFFICERS_REASON not in text and ANNA not in text


async def test_the_period_bounds_the_report(world: DemoWorld, session: aiohttp.ClientSession) -> None:
    scenario = await jan_and_anna(world, session)
    now = datetime.now(UTC)
    after = await gather(world.hub, JAN, scenario.ended, scenario.ended + timedelta(hours=1), "privacy-office", now)
    assert (after.accesses, after.reviews, after.told) == ((), (), ())  # the review was decided before
    assert len(after.consents) == len(after.refusals) == 1  # still in force then
    before = scenario.started - timedelta(days=2)
    earlier = await gather(world.hub, JAN, before, before + timedelta(days=1), "privacy-office", now)
    assert (earlier.accesses, earlier.consents, earlier.refusals, earlier.reviews, earlier.told) == ((),) * 5
    assert "Nobody asked for data about you in this period." in (await asyncio.to_thread(html, earlier)).decode()


def test_a_period_is_rfc_3339_or_a_duration_before_now() -> None:
    now = datetime(2026, 12, 3, 8, 0, tzinfo=UTC)
    assert moment("90d", "since", now) == now - timedelta(days=90)
    assert moment("2w", "since", now) == now - timedelta(weeks=2)
    assert period("2026-01-01T00:00:00+01:00", "24h", now) == (
        datetime(2025, 12, 31, 23, 0, tzinfo=UTC),
        now - timedelta(hours=24),
    )
    assert period("1d", None, now) == (now - timedelta(days=1), now)
    for since, until in (("last year", None), ("2026-01-01", None), ("1d", "2d"), ("5y", None)):
        with pytest.raises(errors.Invalid):
            period(since, until, now)


def test_what_was_in_force_at_some_time_in_the_period_is_reported() -> None:
    since, until = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 2, 1, tzinfo=UTC)
    assert overlaps(since - timedelta(days=9), None, since, until)  # still in force
    assert overlaps(since - timedelta(days=9), since, since, until)  # ended as the period began
    assert not overlaps(since - timedelta(days=9), since - timedelta(seconds=1), since, until)
    assert not overlaps(until, None, since, until)  # begun once it was over
    given = Consent(
        id="c", subject=JAN, representative=None, mandate=None, grantee="family-benefits", categories=("income",),
        purposes=("benefit-eligibility",), valid_from=since, valid_until=until, channel="portal", evidence="form",
        evidence_sha256=None, notice_version=None, created_at=since, created_by="citizen-portal",
    )  # fmt: skip
    assert consent_end(given) == until
    withdrawn = replace(given, withdrawal=Ending(since + timedelta(days=3), "citizen-portal", "portal"))
    assert consent_end(withdrawn) == since + timedelta(days=3)
    assert consent_end(replace(withdrawn, valid_until=None)) == since + timedelta(days=3)
    assert consent_end(replace(given, valid_until=None)) is None


def test_unicode_names_render_in_every_format_and_csv_cells_are_inert() -> None:
    at = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
    access = Access(
        at, "demos-leuven", "civil-status", "benefit-eligibility", "=HYPERLINK(\"x\")", "r-9", 4,
        "register", "white", "delivered", None, True,
    )  # fmt: skip
    report = SubjectReport(
        "85073003328", at - timedelta(days=1), at + timedelta(days=1), at, "cli:officer", "https://hub.example",
        (access,), (), (), (),
        (Told(at, "register", "civil-status", "updated", "demos-leuven", "dead", None),),
        {"demos-leuven": "Δήμος Λέουβεν — Ville de Liège", "register": "Rijksregister Œ"},
        {"benefit-eligibility": PurposeEntry("benefit-eligibility", "", False, None)},
    )  # fmt: skip
    text = _pdf_text(pdf(report))
    assert "Δήμος Λέουβεν — Ville de Liège (demos-leuven)" in text and "Rijksregister Œ" in text
    assert "emergency access" in text and "not reached" in text and readable(at) in text
    assert "Δήμος Λέουβεν — Ville de Liège (demos-leuven)" in html(report).decode()
    [header, *rows] = list(csv.reader(io.StringIO(csv_bytes(report).decode())))
    assert header[:3] == ["section", "item", "value"]
    access_row = dict(zip(header, rows[6], strict=True))
    assert access_row["ground"] == '\'=HYPERLINK("x")' and access_row["requester"] == "Δήμος Λέουβεν — Ville de Liège"
    assert access_row["at"] == "2026-11-23T10:00:00.000000Z"


def _pdf_text(document: bytes) -> str:
    assert document.startswith(b"%PDF")
    reader = PdfReader(io.BytesIO(document))
    return " ".join(" ".join(page.extract_text() for page in reader.pages).split())  # cells wrap their lines
