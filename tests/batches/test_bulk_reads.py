"""A window of a batch reads the directory and the consents once for all its lines: each line's facts are exactly
those its request alone would read, on each store."""

from __future__ import annotations

from typing import Any

from adapters.examples.demo_agencies import ANNA, JAN, PIETER, SOFIE
from broker.base.store.plans import Plan
from broker.cli.demo import DemoWorld

QUESTIONS = [
    (subject, category)
    for subject in (ANNA, JAN, SOFIE, PIETER, "00000000000")
    for category in ("civil-status", "income", "employment-status", "pension")
]


async def test_a_window_reads_what_each_request_alone_reads(world: DemoWorld) -> None:
    hub = world.hub

    async def run(plan: Plan[Any]) -> Any:
        async with hub.engine.connect() as connection:
            return await connection.run_sync(plan.on)

    found = {"relationship": 0, "holding": 0, "consent or refusal": 0}
    for agency in ("family-benefits", "municipality-leuven", "employment-office"):
        together = await run(hub.directory.facts_of_many(agency, QUESTIONS))
        consents = await run(hub.consents.for_exchanges([subject for subject, _ in QUESTIONS], agency))
        assert list(together) == QUESTIONS
        for subject, category in QUESTIONS:
            alone = await run(hub.directory.facts(agency, subject, category))
            assert together[(subject, category)] == alone, (agency, subject, category)
            assert consents[subject] == await run(hub.consents.for_exchange(subject, agency)), (agency, subject)
            found["relationship"] += bool(alone.relationship)
            found["holding"] += bool(alone.holding)
            found["consent or refusal"] += bool(consents[subject][0] or consents[subject][1])
    assert all(found.values()), found  # the world has some of each: the comparison compared something
