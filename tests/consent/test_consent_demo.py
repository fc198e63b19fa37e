"""The demo's consent story, as `crossroads demo` prints it: refused for no consent, delivered after consent,
refused again after the withdrawal; a refusal stopping a consent-based share but not a legal mandate; an
emergency access and the review it opened."""

from __future__ import annotations

from adapters.examples.demo_agencies import ANNA, JAN
from broker.cli.demo import DemoWorld, run_scenario


def position(lines: list[str], *parts: str, after: int = -1) -> int:
    """The first line after `after` containing every part."""
    return next(i for i, line in enumerate(lines) if i > after and all(part in line for part in parts))


async def test_the_demo_tells_the_consent_story(sqlite_world: DemoWorld) -> None:
    lines = await run_scenario(sqlite_world)
    assert not [line for line in lines if "UNEXPECTED" in line]
    anna_income = f"family-benefits asks income of {ANNA} for benefit-eligibility"
    refused = position(lines, anna_income, "403 no-consent")
    given = position(lines, "consent given", ANNA, after=refused)
    delivered = position(lines, anna_income, "200 from tax-authority", after=given)
    withdrawn = position(lines, "withdrawn", "status withdrawn", after=delivered)
    position(lines, anna_income, "403 no-consent", after=withdrawn)

    position(lines, "refusal", f"{JAN} refuses family-benefits everything")
    position(lines, f"asks income of {JAN} for benefit-eligibility", "403 consent-refused")
    position(lines, f"asks income of {JAN} for fraud-investigation", "200 from tax-authority")

    emergency = position(lines, "municipality-leuven asks civil-status", "in an emergency", "200", "opened")
    review = lines[emergency].split("review ")[-1].split()[0]
    position(lines, f"privacy-office finds emergency review {review} (pending)", "house fire", after=emergency)
    position(lines, "EMERGENCY", "delivered", "r-emergency-1")
    position(lines, "in an emergency", "403 emergency-not-allowed")
