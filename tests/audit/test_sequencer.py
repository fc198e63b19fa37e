"""The sequencer against real stores: reservations a dead process left behind are closed as abandoned (at start
too, once their lease has run out, never while it runs), two hub processes on one store still build one chain,
shutdown seals the log, and a rotated hub key signs at start while the old key's checkpoints still verify."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from adapters.examples.demo_agencies import ANNA
from broker.audit.log import AuditEntry
from broker.base.signing import generate_key, load_private_key, private_key_pem
from broker.base.store import StoreUnavailable
from broker.cli.demo import DemoWorld, demo_world
from broker.hub import open_hub


def entry(at: datetime, subject: str = ANNA) -> AuditEntry:
    return AuditEntry(at=at, kind="exchange", exchange=str(uuid.uuid4()), requester="family-benefits", subject=subject)


async def test_a_reservation_left_forwarding_is_closed_as_abandoned_and_its_late_commit_fails(
    world: DemoWorld,
) -> None:
    audit, now = world.hub.audit, datetime.now(UTC)
    stale, live = entry(now - timedelta(hours=1)), entry(now)
    await audit.reserve(stale)
    await audit.reserve(live)
    await world.hub.sequencer.step()
    [closed] = await audit.records(exchange=stale.exchange)
    [waiting] = await audit.records(exchange=live.exchange)
    assert (closed.outcome, closed.position is not None) == ("abandoned", True)
    assert (waiting.outcome, waiting.position) == ("forwarding", None)
    stale.outcome = live.outcome = "delivered"
    with pytest.raises(StoreUnavailable):
        await audit.commit(stale)
    await audit.commit(live)
    await world.hub.sequencer.step()
    [completed] = await audit.records(exchange=live.exchange)
    assert (completed.outcome, completed.position is not None) == ("delivered", True)
    assert (await audit.verify([world.hub.key.public_key])).ok


async def test_a_hub_starting_closes_what_dead_processes_left_forwarding_and_leaves_live_ones(
    world: DemoWorld,
) -> None:
    """A record left `forwarding` past its lease (holder timeout plus margin, from the exchange's arrival) is
    closed as abandoned and chained by the next hub process that starts; one whose lease still runs belongs to a
    live process (here the world's hub) and is left for it to complete."""
    audit, now = world.hub.audit, datetime.now(UTC)
    dead, live = entry(now - timedelta(minutes=1)), entry(now)
    await audit.reserve(dead)
    await audit.reserve(live)
    [reserved] = await audit.records(exchange=live.exchange)
    assert reserved.lease_until is not None and reserved.lease_until > now
    async with open_hub(world.hub.config):
        [closed] = await audit.records(exchange=dead.exchange)
        [waiting] = await audit.records(exchange=live.exchange)
        assert (closed.outcome, closed.position is not None) == ("abandoned", True)
        assert (waiting.outcome, waiting.position) == ("forwarding", None)
    live.outcome, live.status = "delivered", 200
    await audit.commit(live)
    await world.hub.sequencer.step()
    [completed] = await audit.records(exchange=live.exchange)
    assert (completed.outcome, completed.position is not None) == ("delivered", True)
    assert (await audit.verify([world.hub.key.public_key])).ok


async def test_a_completion_stores_every_column_that_changed_since_the_reservation(world: DemoWorld) -> None:
    """Completing a record sets only the columns the last steps fill in when nothing else changed, and every
    column when something else did (here the holder): what is stored is the entry as it ended either way."""
    audit, now = world.hub.audit, datetime.now(UTC)
    usual, unusual = entry(now), entry(now)
    for reserved in (usual, unusual):
        reserved.holder, reserved.zone = "tax", "white"
        await audit.reserve(reserved)
        reserved.outcome, reserved.status, reserved.latency_ms = "delivered", 200, 12.5
        reserved.response_digest = "sha-256:" + "1" * 64
    unusual.holder, unusual.consent_id = "employment", "consent-1"
    await audit.commit(usual)
    await audit.commit(unusual)
    for completed in (usual, unusual):
        [record] = await audit.records(exchange=completed.exchange)
        stored = {name: getattr(record, name) for name in completed.values()}
        assert stored == completed.values()
    await world.hub.sequencer.step()
    assert (await audit.verify([world.hub.key.public_key])).ok


async def test_two_hub_processes_on_one_store_build_one_chain(world: DemoWorld) -> None:
    async with open_hub(world.hub.config) as second:
        hubs = (world.hub, second)
        now = datetime.now(UTC)
        writes = [hub.audit.commit(entry(now, f"s{index}")) for index in range(60) for hub in hubs]
        await asyncio.gather(*writes, *(hub.sequencer.step() for hub in hubs for _ in range(3)))
        await asyncio.gather(*(hub.sequencer.step() for hub in hubs))
    await world.hub.sequencer.step()
    verdict = await world.hub.audit.verify([world.hub.key.public_key])
    assert verdict.ok, verdict.broken
    assert verdict.records == await world.hub.audit.count() >= 120
    assert await world.hub.audit.unlinked() == 0


async def test_shutdown_seals_and_a_rotated_key_signs_at_start(tmp_path: Path) -> None:
    async with demo_world(tmp_path / "state") as world, aiohttp.ClientSession() as session:
        for _ in range(3):
            await world.client("family-benefits", session).exchange(ANNA, "civil-status", "benefit-eligibility")
        config, old = world.hub.config, world.hub.key
    new = await asyncio.to_thread(_rotate, config.key_path)
    async with open_hub(config) as hub:
        checkpoints = await hub.audit.checkpoints()
        assert [checkpoint.signed_by([old.public_key]) for checkpoint in checkpoints[-2:]] == [True, False]
        assert checkpoints[-1].signed_by([new]) and checkpoints[-1].size == checkpoints[-2].size
        assert checkpoints[-1].size == await hub.audit.count()  # shutdown linked and sealed everything
        verdict = await hub.audit.verify([new])
        assert verdict.ok and verdict.unsigned == 0
        broken = (await hub.audit.verify([old.public_key])).broken
        assert broken is not None and broken.reason == "untrusted-checkpoint"


def _rotate(path: Path) -> Ed25519PublicKey:
    """Replace the hub's key file with a new key, as an operator rotating it would; the new public key."""
    path.write_bytes(private_key_pem(generate_key()))
    return load_private_key(path.read_bytes()).public_key()
