"""Headless Chromium for the console's end-to-end tests: Debian's `chromium` driven by Playwright for Python
(never a browser Playwright downloads), signing in as a person would, and photographing the main pages.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from playwright.async_api import Browser, Page, async_playwright

CHROMIUM = os.environ.get("CROSSROADS_CHROMIUM", "/usr/bin/chromium")
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT = {"width": 1100, "height": 760}
# One screenshot of each main page, for the README: (file name, operator role, path).
MAIN_PAGES = (
    ("sign-in", None, "/console/sign-in"),
    ("overview", "privacy_officer", "/console/"),
    ("audit-search", "privacy_officer", "/console/audit"),
    ("person", "privacy_officer", "/console/people/85073003328"),
    ("reviews", "privacy_officer", "/console/reviews"),
    ("emergencies", "privacy_officer", "/console/emergencies"),
    ("anomalies", "privacy_officer", "/console/anomalies"),
    ("chain", "privacy_officer", "/console/chain?verify=1"),
    ("rules", "admin", "/console/rules"),
    (
        "explain",
        "admin",
        "/console/rules/explain?requester=family-benefits&category=income&purpose=benefit-eligibility",
    ),
    ("history", "admin", "/console/rules/history"),
    ("agencies", "admin", "/console/agencies"),
    ("suspend", "admin", "/console/agencies#family-benefits"),  # the confirmations suspending and revoking ask for
    ("dead-letters", "admin", "/console/dead-letters"),
)
OPERATOR_OF_ROLE = {"privacy_officer": "privacy-office", "admin": "admin-desk"}


def missing() -> str | None:
    """Why the browser tests cannot run here, or None."""
    if not (Path(CHROMIUM).is_file() or shutil.which(CHROMIUM)):
        return f"Chromium is not installed at {CHROMIUM}: install Debian's `chromium` package (as `.ci/run` does)"
    return None


@asynccontextmanager
async def chromium() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield browser
        finally:
            await browser.close()


async def sign_in(page: Page, hub_url: str, operator: str, password: str) -> None:
    await page.goto(f"{hub_url}/console/sign-in")
    await page.get_by_label("Operator id").fill(operator)
    await page.get_by_label("Password").fill(password)
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url(f"{hub_url}/console/")


async def sign_out(page: Page) -> None:
    await page.get_by_role("button", name="Sign out").click()
    await page.wait_for_url("**/console/sign-in")


async def photograph(browser: Browser, hub_url: str, passwords: dict[str, str], folder: Path) -> list[Path]:
    """A screenshot of each main page, signed in as the role that uses it; the files written."""
    folder.mkdir(parents=True, exist_ok=True)  # noqa: ASYNC240 -- once, before the browser works
    written, signed_in_as = [], None
    context = await browser.new_context(viewport=VIEWPORT)  # type: ignore[arg-type]
    page = await context.new_page()
    for name, role, path in MAIN_PAGES:
        if role != signed_in_as:
            if signed_in_as is not None:
                await sign_out(page)
            if role is not None:
                operator = OPERATOR_OF_ROLE[role]
                await sign_in(page, hub_url, operator, passwords[operator])
            signed_in_as = role
        await page.goto(hub_url + path)
        target = folder / f"{name}.png"
        await page.screenshot(path=str(target))
        written.append(target)
    await context.close()
    return written
