"""Photograph each main console page of the demo world, after its scenario, for the README:

.venv/bin/python -m tests.console.screenshots docs/screenshots
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path

import aiohttp

from adapters.examples import demo_agencies as demo
from broker.cli.demo import DemoWorld, demo_world, run_scenario
from tests.console.browser import chromium, missing, photograph


async def stage(world: DemoWorld) -> None:
    """The demo's scenario, then one grey-zone question left waiting, so the review queue shows a case."""
    await run_scenario(world)
    async with aiohttp.ClientSession() as session:
        question = {"subject": demo.ANNA, "category": "employment-status", "purpose": "benefit-eligibility"}
        await world.client("family-benefits", session).call("POST", "/v1/exchanges", question)


async def main(folder: Path) -> None:
    with tempfile.TemporaryDirectory(prefix="crossroads-screenshots-") as scratch:
        async with demo_world(Path(scratch)) as world, chromium() as browser:
            await stage(world)
            for path in await photograph(browser, world.hub_url, world.console_passwords, folder):
                print(path, f"{path.stat().st_size // 1024} KiB")


if __name__ == "__main__":
    reason = missing()
    if reason is not None:
        sys.exit(reason)
    asyncio.run(main(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/screenshots")))
