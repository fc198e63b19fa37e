"""The directory store on a migrated SQLite file and PostgreSQL database: agencies, operators and names; keys
registered, rotated and revoked; relationships and holdings as of a time; and its cached reads following a
change made through another store on the same database (another hub process) once it follows the version."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from broker.base.caches import CacheSettings
from broker.base.signing import generate_key, public_key_pem
from broker.base.store import Lane, create_engine
from broker.schema.migrations import upgrade
from directory.keys import KeyRegistration
from directory.store import (
    AgencyEntry,
    DirectoryStore,
    KeyConflict,
    OperatorEntry,
    PurposeEntry,
    capacity_in_force,
    holders_in_force,
    key_refusal,
)

AT = datetime(2026, 11, 22, 12, tzinfo=UTC)
DAY = timedelta(days=1)
SUBJECT = "85073003328"
AGENCY_PEM, OPERATOR_PEM = (public_key_pem(generate_key().public_key()) for _ in range(2))
ADAPTER = "http://127.0.0.1:9"

WORLD: dict[str, Any] = {
    "categories": [{"name": "civil-status"}, {"name": "income"}],
    "purposes": [
        {"name": "benefit-eligibility", "description": "Deciding on a benefit"},
        {"name": "fraud-investigation", "confidential": True, "embargo_days": 30},
    ],
    "agencies": [
        {
            "id": "family-benefits",
            "name": "Family Benefits",
            "adapter_url": ADAPTER,
            "keys": [{"key_id": "family-benefits-1", "public_key_pem": AGENCY_PEM}],
        },
        {"id": "population-register", "name": "Population Register", "adapter_url": ADAPTER},
        {"id": "tax-office", "name": "Tax Office", "adapter_url": ADAPTER, "status": "suspended"},
    ],
    "operators": [
        {
            "id": "admin-desk",
            "name": "Admin Desk",
            "role": "admin",
            "keys": [{"key_id": "admin-desk-1", "public_key_pem": OPERATOR_PEM}],
        }
    ],
    "holdings": [
        {"holder": "population-register", "category": "civil-status", "subjects": [SUBJECT]},
        {"holder": "tax-office", "category": "civil-status", "subjects": [SUBJECT]},
        {
            "holder": "family-benefits",
            "category": "income",
            "subjects": [SUBJECT],
            "valid_from": (AT - 10 * DAY).isoformat(),
            "valid_until": AT.isoformat(),
        },
        {"holder": "population-register", "category": "income", "subjects": [SUBJECT]},
    ],
    "relationships": [
        {
            "agency": "family-benefits",
            "capacity": "beneficiary",
            "subjects": [SUBJECT],
            "valid_from": (AT - 30 * DAY).isoformat(),
            "valid_until": (AT + 30 * DAY).isoformat(),
        },
        {"agency": "tax-office", "capacity": "taxpayer", "subjects": [SUBJECT]},
        {
            "agency": "population-register",
            "capacity": "resident",
            "subjects": [SUBJECT],
            "valid_from": (AT + DAY).isoformat(),
        },
    ],
}

OpenStore = Callable[[CacheSettings], Awaitable[DirectoryStore]]


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def open_store(database_url: str) -> AsyncIterator[OpenStore]:
    """Opens directory stores on one migrated database, each with its own engine and lane, as hub processes do."""
    engines: list[AsyncEngine] = []

    async def open_one(cache: CacheSettings) -> DirectoryStore:
        engine = create_engine(database_url)
        if not engines:
            await upgrade(engine)
        engines.append(engine)
        return DirectoryStore(async_sessionmaker(engine, expire_on_commit=False), Lane(engine), cache)

    yield open_one
    for engine in engines:
        await engine.dispose()


@pytest.fixture
async def directory(open_store: OpenStore) -> DirectoryStore:
    store = await open_store(CacheSettings())
    await store.load(WORLD, AT)
    return store


def _registration(key_id: str, overlap: timedelta | None = None, pem: str | None = None) -> KeyRegistration:
    pem = pem or public_key_pem(generate_key().public_key())
    return KeyRegistration(key_id, pem, AT, None, overlap)


async def _ids(agencies: Awaitable[list[AgencyEntry]]) -> list[str]:
    return [agency.id for agency in await agencies]


# --- agencies, operators, names ----------------------------------------------------------------------------


async def test_agencies_and_operators_as_loaded(directory: DirectoryStore) -> None:
    family = AgencyEntry("family-benefits", "Family Benefits", ADAPTER, "active")
    assert await directory.agency("family-benefits") == family
    assert await directory.agency("nobody") is None
    assert await _ids(directory.agencies()) == ["family-benefits", "population-register", "tax-office"]
    assert await directory.operator("admin-desk") == OperatorEntry("admin-desk", "Admin Desk", "admin", "active")
    assert await directory.operator("nobody") is None


async def test_loading_again_replaces_what_it_names_and_keeps_the_rest(directory: DirectoryStore) -> None:
    assert (await directory.agency("family-benefits")) is not None  # read once: now cached
    renamed = {**WORLD["agencies"][0], "name": "Family Benefits Agency", "keys": []}
    await directory.load({"agencies": [renamed]}, AT)
    agency = await directory.agency("family-benefits")
    assert agency is not None and agency.name == "Family Benefits Agency"
    assert [key.key_id for key in await directory.keys_of("family-benefits")] == ["family-benefits-1"]
    assert await _ids(directory.agencies()) == ["family-benefits", "population-register", "tax-office"]


async def test_a_status_change_counts_at_once_in_the_store_that_made_it(directory: DirectoryStore) -> None:
    assert (await directory.agency("family-benefits")) is not None
    await directory.set_agency_status("family-benefits", "suspended")
    agency = await directory.agency("family-benefits")
    assert agency is not None and agency.status == "suspended"
    with pytest.raises(KeyError):
        await directory.set_agency_status("nobody", "suspended")


async def test_categories_and_purposes(directory: DirectoryStore) -> None:
    assert await directory.category_exists("civil-status")
    assert not await directory.category_exists("health")
    assert await directory.purpose_exists("benefit-eligibility")
    assert not await directory.purpose_exists("marketing")
    assert await directory.purposes() == [
        PurposeEntry("benefit-eligibility", "Deciding on a benefit", False, None),
        PurposeEntry("fraud-investigation", "", True, 30),
    ]
    await directory.load({"categories": [{"name": "health"}]}, AT)
    assert await directory.category_exists("health")  # the cached answer "no" went with the write


# --- keys ----------------------------------------------------------------------------------------------------


async def test_a_loaded_key_authenticates(directory: DirectoryStore) -> None:
    key = await directory.key("family-benefits-1")
    assert key is not None
    assert (key.principal_kind, key.principal_id, key.status) == ("agency", "family-benefits", "active")
    assert public_key_pem(key.public_key) == AGENCY_PEM
    assert (key.valid_from, key.valid_until) == (AT, None)
    assert key_refusal(key, AT) is None
    assert key_refusal(key, AT - timedelta(seconds=1)) == "the key is not valid yet"
    assert await directory.answering_key("family-benefits-1") == key
    assert await directory.key("nobody-1") is None
    assert key_refusal(None, AT) == "the key id is not registered"


async def test_a_new_key_is_registered_beside_the_others(directory: DirectoryStore) -> None:
    record = await directory.add_key("agency", "family-benefits", _registration("family-benefits-2"), AT)
    assert (record.key_id, record.principal_kind, record.status, record.valid_until) == (
        "family-benefits-2",
        "agency",
        "active",
        None,
    )
    keys = await directory.keys_of("family-benefits")
    assert [(key.key_id, key.valid_until) for key in keys] == [("family-benefits-1", None), ("family-benefits-2", None)]
    key = await directory.key("family-benefits-2")
    assert key is not None and key_refusal(key, AT) is None


async def test_a_key_id_or_a_public_key_registered_twice_is_a_conflict(directory: DirectoryStore) -> None:
    with pytest.raises(KeyConflict, match="key id"):
        await directory.add_key("agency", "family-benefits", _registration("family-benefits-1"), AT)
    with pytest.raises(KeyConflict, match="public key"):
        await directory.add_key("agency", "family-benefits", _registration("family-benefits-2", pem=AGENCY_PEM), AT)
    with pytest.raises(KeyConflict, match="public key"):  # another principal's key pair as well
        await directory.add_key("operator", "admin-desk", _registration("admin-desk-2", pem=AGENCY_PEM), AT)
    assert [key.key_id for key in await directory.keys_of("family-benefits")] == ["family-benefits-1"]
    assert [key.key_id for key in await directory.keys_of("admin-desk")] == ["admin-desk-1"]


async def test_a_rotation_ends_the_principals_other_keys_after_the_overlap(directory: DirectoryStore) -> None:
    await directory.add_key("agency", "family-benefits", _registration("family-benefits-2", 7 * DAY), AT)
    old = await directory.key("family-benefits-1")
    assert old is not None and old.valid_until == AT + 7 * DAY
    assert key_refusal(old, AT + 7 * DAY - timedelta(seconds=1)) is None
    assert key_refusal(old, AT + 7 * DAY) == "the key has expired"

    # A second rotation with a longer overlap leaves the first key's sooner end as it was.
    await directory.add_key("agency", "family-benefits", _registration("family-benefits-3", 30 * DAY), AT)
    ends = {key.key_id: key.valid_until for key in await directory.keys_of("family-benefits")}
    assert ends == {
        "family-benefits-1": AT + 7 * DAY,
        "family-benefits-2": AT + 30 * DAY,
        "family-benefits-3": None,
    }
    operator = await directory.key("admin-desk-1")  # another principal's keys are not touched
    assert operator is not None and operator.valid_until is None


async def test_a_revoked_key_is_refused_and_stays_revoked(directory: DirectoryStore) -> None:
    assert await directory.key("family-benefits-1") is not None  # read once: now cached
    record = await directory.revoke_key("family-benefits", "family-benefits-1", "admin-desk", "laptop lost", AT)
    assert record is not None
    assert (record.status, record.revoked_at, record.revoked_by, record.revocation_reason) == (
        "revoked",
        AT,
        "admin-desk",
        "laptop lost",
    )
    key = await directory.key("family-benefits-1")
    assert key_refusal(key, AT) == "the key is revoked"
    with pytest.raises(KeyConflict, match="already revoked"):
        await directory.revoke_key("family-benefits", "family-benefits-1", "admin-desk", "again", AT)
    # A key of another principal, or none at all: nothing to revoke.
    assert await directory.revoke_key("family-benefits", "admin-desk-1", "admin-desk", "not theirs", AT) is None
    assert await directory.revoke_key("family-benefits", "family-benefits-9", "admin-desk", "unknown", AT) is None
    operator = await directory.key("admin-desk-1")
    assert operator is not None and operator.status == "active"


# --- relationships and holdings as of a time -----------------------------------------------------------------


async def test_a_relationship_counts_from_its_start_until_before_its_end(directory: DirectoryStore) -> None:
    assert await directory.relationship("family-benefits", SUBJECT, AT - 30 * DAY - timedelta(seconds=1)) is None
    assert await directory.relationship("family-benefits", SUBJECT, AT - 30 * DAY) == "beneficiary"
    assert await directory.relationship("family-benefits", SUBJECT, AT) == "beneficiary"
    assert await directory.relationship("family-benefits", SUBJECT, AT + 30 * DAY) is None
    assert await directory.relationship("population-register", SUBJECT, AT) is None
    assert await directory.relationship("population-register", SUBJECT, AT + DAY) == "resident"
    assert await directory.relationship("family-benefits", "60010100123", AT) is None


async def test_related_agencies_are_the_active_ones_with_a_current_relationship(directory: DirectoryStore) -> None:
    assert await _ids(directory.related_agencies(SUBJECT, AT)) == ["family-benefits"]
    assert await _ids(directory.related_agencies(SUBJECT, AT + DAY)) == ["family-benefits", "population-register"]
    assert await _ids(directory.related_agencies(SUBJECT, AT + 30 * DAY)) == ["population-register"]


async def test_holders_are_the_active_agencies_holding_the_category_then(directory: DirectoryStore) -> None:
    # The tax office holds civil status too, but it is suspended.
    assert await _ids(directory.holders(SUBJECT, "civil-status", AT)) == ["population-register"]
    assert await _ids(directory.holders(SUBJECT, "income", AT - DAY)) == ["family-benefits"]
    assert await _ids(directory.holders(SUBJECT, "income", AT)) == ["population-register"]
    assert await _ids(directory.holders(SUBJECT, "health", AT)) == []
    assert await _ids(directory.holders("60010100123", "civil-status", AT)) == []


async def test_an_exchanges_read_answers_as_reading_each(directory: DirectoryStore, database_url: str) -> None:
    engine = create_engine(database_url)
    try:
        for agency, subject, category, at in (
            ("family-benefits", SUBJECT, "income", AT - DAY),
            ("family-benefits", SUBJECT, "income", AT),
            ("population-register", "60010100123", "civil-status", AT),
        ):
            [facts] = await Lane(engine).plans([directory.facts(agency, subject, category)])
            assert capacity_in_force(facts.relationship, at) == await directory.relationship(agency, subject, at)
            assert holders_in_force(facts.holding, at) == await directory.holders(subject, category, at)
    finally:
        await engine.dispose()


# --- caches following another process's writes -------------------------------------------------------------


async def test_another_stores_writes_count_at_the_next_key_read_by_default(
    directory: DirectoryStore, open_store: OpenStore
) -> None:
    other = await open_store(CacheSettings())  # the hub's default: the version is read on every key read
    key = await other.key("family-benefits-1")
    assert key is not None and key.status == "active"
    await directory.revoke_key("family-benefits", "family-benefits-1", "admin-desk", "laptop lost", AT)
    assert key_refusal(await other.key("family-benefits-1"), AT) == "the key is revoked"


async def test_cached_reads_follow_the_directory_version_within_follow_s(
    directory: DirectoryStore, open_store: OpenStore
) -> None:
    clock = Clock()
    other = await open_store(CacheSettings(clock=clock, follow_s=5.0))
    assert key_refusal(await other.key("family-benefits-1"), AT) is None
    assert await other.agency("family-benefits") == AgencyEntry("family-benefits", "Family Benefits", ADAPTER, "active")
    assert await _ids(other.holders(SUBJECT, "civil-status", AT)) == ["population-register"]
    assert not await other.category_exists("health")

    await directory.set_agency_status("family-benefits", "suspended")
    await directory.set_agency_status("population-register", "suspended")
    await directory.revoke_key("family-benefits", "family-benefits-1", "admin-desk", "laptop lost", AT)
    await directory.load({"categories": [{"name": "health"}]}, AT)

    # Within follow_s the other store answers what it read before: that is the bound it promises.
    assert key_refusal(await other.key("family-benefits-1"), AT) is None
    clock.now += 5.0
    await other.follow()  # what the hub does every second, and every key read does
    assert key_refusal(await other.key("family-benefits-1"), AT) == "the key is revoked"
    assert await other.agency("family-benefits") == AgencyEntry(
        "family-benefits", "Family Benefits", ADAPTER, "suspended"
    )
    assert await _ids(other.holders(SUBJECT, "civil-status", AT)) == []
    assert await other.category_exists("health")
