"""/metrics speaks Prometheus: parsed by prometheus_client's own parser, with the figures operators watch."""

from __future__ import annotations

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from adapters.examples.demo_agencies import ANNA
from broker.cli.demo import DemoWorld


async def test_metrics_after_some_exchanges(sqlite_world: DemoWorld, session: aiohttp.ClientSession) -> None:
    client = sqlite_world.client("family-benefits", session)
    await client.exchange(ANNA, "civil-status", "benefit-eligibility")
    async with session.get(sqlite_world.hub_url + "/metrics") as answer:
        assert answer.status == 200 and answer.content_type == "text/plain"
        text = await answer.text()
    families = {family.name: family for family in text_string_to_metric_families(text)}
    samples = {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in families.values()
        for sample in family.samples
    }
    assert samples[("crossroads_exchanges_total", (("outcome", "delivered"), ("zone", "white")))] == 1
    assert samples[("crossroads_exchange_added_seconds_count", ())] == 1
    assert samples[("crossroads_holder_seconds_count", (("holder", "population-register"),))] == 1
    assert samples[("crossroads_audit_batch_records_count", ())] >= 1
    assert samples[("crossroads_audit_commit_seconds_count", ())] >= 1
    assert samples[("crossroads_policy_version", ())] == 1
    assert ("crossroads_notifications_pending", ()) in samples
