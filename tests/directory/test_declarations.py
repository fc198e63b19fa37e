"""Declaring references in the directory store, on a migrated SQLite file and PostgreSQL database: a declaration
appended once and never again while it says the same; an end appended beside the start; what the registry does
not know refused with nothing written; a batch in one transaction; the exchange path, the notification fan-out
and other hub processes following each declaration; and the directory read back as it stood at any moment."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from broker.base.caches import CacheSettings
from broker.base.store import Lane, create_engine
from broker.schema.migrations import upgrade
from directory.models import Relationship
from directory.references import Declaration, DeclarationInvalid, Stated
from directory.store import AgencyEntry, DirectoryStore, capacity_in_force, holders_in_force

AT = datetime(2026, 11, 22, 12, tzinfo=UTC)
HOUR, DAY = timedelta(hours=1), timedelta(days=1)
ANNA, JAN = "85073003328", "90021512345"
ADAPTER = "http://127.0.0.1:9"

WORLD: dict[str, Any] = {
    "categories": [{"name": "civil-status"}, {"name": "income"}],
    "capacities": [{"name": "beneficiary"}, {"name": "job-seeker"}],
    "agencies": [
        {"id": "family-benefits", "name": "Family Benefits", "adapter_url": ADAPTER},
        {"id": "employment-office", "name": "Employment Office", "adapter_url": ADAPTER},
        {"id": "population-register", "name": "Population Register", "adapter_url": ADAPTER},
        {"id": "tax-office", "name": "Tax Office", "adapter_url": ADAPTER, "status": "suspended"},
    ],
    "holdings": [{"holder": "population-register", "category": "civil-status", "subjects": [ANNA]}],
    "relationships": [
        {"agency": "family-benefits", "capacity": "beneficiary", "subjects": [ANNA], "valid_from": AT - DAY}
    ],
}


def client(agency: str, subject: str, since: datetime = AT, until: datetime | None = None) -> Declaration:
    return Declaration("relationship", agency, subject, "job-seeker", since, until)


def holding(holder: str, subject: str, category: str = "income", until: datetime | None = None) -> Declaration:
    return Declaration("holding", holder, subject, category, AT, until)


class Directory:
    """A directory store on a migrated database, with what the tests read of its tables besides."""

    def __init__(self, engine: AsyncEngine, store: DirectoryStore) -> None:
        self.engine = engine
        self.store = store

    async def rows(self, table: str) -> int:
        async with self.engine.connect() as connection:
            return int(await connection.scalar(text(f"SELECT count(*) FROM {table}")))  # noqa: S608 -- our tables

    async def version(self) -> int:
        async with self.engine.connect() as connection:
            return int(await connection.scalar(text("SELECT version FROM directory_version WHERE id = 2")))


OpenStore = Callable[[], Awaitable[DirectoryStore]]


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_engine(database_url)
    await upgrade(engine)
    yield engine
    await engine.dispose()


@pytest.fixture
async def open_store(database_url: str, engine: AsyncEngine) -> AsyncIterator[OpenStore]:
    """Opens another store on the same database with its own engine and lane, as another hub process does."""
    engines: list[AsyncEngine] = []

    async def open_one() -> DirectoryStore:
        other = create_engine(database_url)
        engines.append(other)
        return DirectoryStore(async_sessionmaker(other, expire_on_commit=False), Lane(other), CacheSettings())

    yield open_one
    for other in engines:
        await other.dispose()


@pytest.fixture
async def directory(engine: AsyncEngine) -> Directory:
    store = DirectoryStore(async_sessionmaker(engine, expire_on_commit=False), Lane(engine), CacheSettings())
    await store.load(WORLD, AT - DAY)
    return Directory(engine, store)


async def _ids(agencies: Awaitable[list[AgencyEntry]]) -> list[str]:
    return [agency.id for agency in await agencies]


# --- declaring one reference --------------------------------------------------------------------------------


async def test_a_new_reference_is_created_once_and_repeating_it_writes_nothing(directory: Directory) -> None:
    store, declaration = directory.store, client("employment-office", JAN)
    before = (await directory.rows("relationships"), await directory.version())
    stated, created = await store.declare(declaration, "employment-office", AT)
    assert created and stated == Stated(declaration, AT, "employment-office")
    again, created = await store.declare(declaration, "employment-office", AT + HOUR)
    assert not created and again == stated  # the declaration that stands: the first one, with its time
    assert await directory.rows("relationships") == before[0] + 1
    assert await directory.version() == before[1] + 1  # the repetition wrote nothing, not even the version


async def test_a_declared_time_is_stored_as_every_other_time_of_the_store(directory: Directory) -> None:
    """Declarations are appended through the driver, not the ORM: their times must still be what SQLAlchemy writes
    and compares (on SQLite a text; one written by the driver's own adapter lacked the microseconds)."""
    declaration = client("employment-office", JAN, until=AT + DAY)
    await directory.store.declare(declaration, "employment-office", AT + HOUR)
    query = select(func.count()).where(
        Relationship.subject == JAN,
        Relationship.valid_from == AT,
        Relationship.valid_until == AT + DAY,
        Relationship.declared_at == AT + HOUR,
    )
    async with directory.engine.connect() as connection:
        assert await connection.scalar(query) == 1


async def test_ending_a_reference_appends_its_end_beside_its_start(directory: Directory) -> None:
    store, declaration = directory.store, client("employment-office", JAN)
    await store.declare(declaration, "employment-office", AT)
    assert await store.relationship("employment-office", JAN, AT + DAY) == "job-seeker"  # now cached
    ended = client("employment-office", JAN, until=AT + DAY)
    stated, created = await store.declare(ended, "employment-office", AT + HOUR)
    assert not created and stated == Stated(ended, AT + HOUR, "employment-office")
    assert await store.relationship("employment-office", JAN, AT + DAY - HOUR) == "job-seeker"
    assert await store.relationship("employment-office", JAN, AT + DAY) is None  # the cache went with the write
    # Reopening it is one more declaration; the rows before it stay as they were.
    stated, created = await store.declare(declaration, "employment-office", AT + 2 * HOUR)
    assert not created and stated.declared_at == AT + 2 * HOUR
    assert await store.relationship("employment-office", JAN, AT + DAY) == "job-seeker"
    assert await directory.rows("relationships") == 1 + 3


@pytest.mark.parametrize(
    ("declaration", "reason"),
    [
        (Declaration("relationship", "employment-office", JAN, "patient", AT), "capacity 'patient' is not registered"),
        (holding("population-register", JAN, "health"), "category 'health' is not registered"),
        (client("tax-office", JAN), "agency 'tax-office' is not an active registered agency"),
        (client("nobody", JAN), "agency 'nobody' is not an active registered agency"),
        (client("employment-office", JAN, until=AT), "until must be later than from"),
    ],
    ids=["capacity", "category", "suspended", "unregistered", "period"],
)
async def test_what_the_registry_does_not_know_is_refused_and_nothing_written(
    directory: Directory, declaration: Declaration, reason: str
) -> None:
    before = (await directory.rows("relationships"), await directory.rows("holdings"), await directory.version())
    with pytest.raises(DeclarationInvalid, match=reason):
        await directory.store.declare(declaration, declaration.owner, AT)
    after = (await directory.rows("relationships"), await directory.rows("holdings"), await directory.version())
    assert after == before


async def test_capacities_are_registered_names(directory: Directory) -> None:
    assert await directory.store.capacity_exists("job-seeker")
    assert not await directory.store.capacity_exists("patient")
    await directory.store.load({"capacities": [{"name": "patient"}]}, AT)
    assert await directory.store.capacity_exists("patient")  # the cached "no" went with the write


# --- the exchange path and the fan-out follow declarations --------------------------------------------------


async def test_holders_and_an_exchanges_read_follow_declarations(directory: Directory) -> None:
    store = directory.store
    lane = Lane(directory.engine)

    async def read(at: datetime) -> tuple[str | None, list[str], int]:
        [facts] = await lane.plans([store.facts("employment-office", JAN, "income")])
        holders = [holder.id for holder in holders_in_force(facts.holding, at)]
        return capacity_in_force(facts.relationship, at), holders, facts.versions.references

    _, _, before = await read(AT)
    assert await read(AT) == (None, [], before)
    assert await store.relationship("employment-office", JAN, AT) is None  # now cached
    await store.declare_many(
        [client("employment-office", JAN), holding("family-benefits", JAN)], "employment-office", AT
    )
    capacity, holders, after = await read(AT)
    assert (capacity, holders) == ("job-seeker", ["family-benefits"]) and after > before  # the version moved
    assert await store.relationship("employment-office", JAN, AT) == "job-seeker"
    assert await _ids(store.holders(JAN, "income", AT)) == ["family-benefits"]
    await store.declare(holding("family-benefits", JAN, until=AT + DAY), "family-benefits", AT + HOUR)
    assert await _ids(store.holders(JAN, "income", AT + DAY)) == []
    assert (await read(AT + DAY))[1] == []


async def test_who_hears_of_a_change_follows_relationships_declared_and_ended(directory: Directory) -> None:
    store = directory.store
    assert await _ids(store.related_agencies(ANNA, AT)) == ["family-benefits"]
    await store.declare(client("employment-office", ANNA), "employment-office", AT)
    assert await _ids(store.related_agencies(ANNA, AT)) == ["employment-office", "family-benefits"]
    ended = Declaration("relationship", "family-benefits", ANNA, "beneficiary", AT - DAY, AT + HOUR)
    await store.declare(ended, "family-benefits", AT)
    assert await _ids(store.related_agencies(ANNA, AT)) == ["employment-office", "family-benefits"]
    assert await _ids(store.related_agencies(ANNA, AT + HOUR)) == ["employment-office"]
    await store.set_agency_status("employment-office", "suspended")
    assert await _ids(store.related_agencies(ANNA, AT)) == ["family-benefits"]


async def test_another_process_follows_a_declaration_at_its_next_request(
    directory: Directory, open_store: OpenStore
) -> None:
    other = await open_store()
    await other.follow()
    assert await other.relationship("employment-office", JAN, AT) is None  # read, and cached
    await directory.store.declare(client("employment-office", JAN), "employment-office", AT)
    await other.follow()  # what every request does first (through `key`)
    assert await other.relationship("employment-office", JAN, AT) == "job-seeker"


async def test_two_processes_declaring_the_same_reference_at_once_write_it_once(
    directory: Directory, open_store: OpenStore
) -> None:
    others = [await open_store() for _ in range(3)]
    declaration = client("employment-office", JAN)
    answers = await asyncio.gather(
        *(store.declare(declaration, "employment-office", AT) for store in [directory.store, *others])
    )
    assert sorted(created for _, created in answers) == [False, False, False, True]
    assert await directory.rows("relationships") == 1 + 1


# --- a batch ---------------------------------------------------------------------------------------------------


async def test_a_batch_applies_the_valid_lines_and_says_why_the_others_are_not(directory: Directory) -> None:
    store = directory.store
    batch = [
        client("employment-office", JAN),
        Declaration("relationship", "employment-office", ANNA, "patient", AT),
        Declaration("holding", "population-register", ANNA, "civil-status", AT - DAY),  # what the world said
        client("tax-office", JAN),
        holding("population-register", JAN, "civil-status"),
        client("employment-office", JAN),  # the same line twice
    ]
    before = (await directory.rows("relationships"), await directory.rows("holdings"))
    verdicts = await store.declare_many(batch, "employment-office", AT)
    assert verdicts == [
        None,
        "capacity 'patient' is not registered",
        None,
        "agency 'tax-office' is not an active registered agency",
        None,
        None,
    ]
    assert (await directory.rows("relationships"), await directory.rows("holdings")) == (before[0] + 1, before[1] + 1)
    version = await directory.version()
    assert await store.declare_many(batch, "employment-office", AT + HOUR) == verdicts  # sent again
    assert (await directory.rows("relationships"), await directory.rows("holdings")) == (before[0] + 1, before[1] + 1)
    assert await directory.version() == version  # nothing written: not even the version moved


async def test_within_a_batch_the_last_declaration_of_a_reference_stands(directory: Directory) -> None:
    store = directory.store
    batch = [client("employment-office", JAN, until=AT + DAY), client("employment-office", JAN)]
    assert await store.declare_many(batch, "employment-office", AT) == [None, None]
    assert await directory.rows("relationships") == 1 + 1
    assert await store.relationship("employment-office", JAN, AT + 2 * DAY) == "job-seeker"


async def test_a_large_batch_spans_the_chunks_of_its_reads(directory: Directory) -> None:
    store = directory.store
    subjects = [f"{number:011d}" for number in range(9_000)]
    batch = [client("employment-office", subject) for subject in subjects]
    assert await store.declare_many(batch, "employment-office", AT) == [None] * len(batch)
    ending = [client("employment-office", subject, until=AT + DAY) for subject in subjects[::2]]
    assert await store.declare_many(batch[1::2] + ending, "employment-office", AT + HOUR) == [None] * len(batch)
    assert await directory.rows("relationships") == 1 + len(batch) + len(ending)
    assert await store.relationship("employment-office", subjects[0], AT + DAY) is None
    assert await store.relationship("employment-office", subjects[-1], AT + DAY) == "job-seeker"


async def test_an_empty_batch_changes_nothing(directory: Directory) -> None:
    version = await directory.version()
    assert await directory.store.declare_many([], "employment-office", AT) == []
    assert await directory.version() == version


# --- the directory as it stood ---------------------------------------------------------------------------------


async def test_history_reads_answer_as_the_directory_stood_then(directory: Directory) -> None:
    store = directory.store
    await store.declare(client("employment-office", JAN), "employment-office", AT)
    await store.declare(holding("family-benefits", JAN), "family-benefits", AT)
    await store.declare(client("employment-office", JAN, until=AT + DAY), "employment-office", AT + 2 * DAY)
    open_ended = Stated(client("employment-office", JAN), AT, "employment-office")
    ended = Stated(client("employment-office", JAN, until=AT + DAY), AT + 2 * DAY, "employment-office")

    # On the third day, the directory as it stood then says the relationship is open; as it stands now, it ended.
    assert await store.relationships_of(JAN, AT + DAY + HOUR, AT + DAY + HOUR) == [open_ended]
    assert await store.relationships_of(JAN, AT + DAY + HOUR) == []
    assert await store.relationships_of(JAN, AT + HOUR) == [ended]  # within its period, as told now
    assert await store.relationships_of(JAN, AT + HOUR, AT - HOUR) == []  # before anything was declared
    assert await store.holdings_of(JAN, AT + HOUR) == [Stated(holding("family-benefits", JAN), AT, "family-benefits")]
    assert await store.holdings_of(JAN, AT - HOUR) == []
    [loaded] = await store.relationships_of(ANNA, AT)
    assert (loaded.declaration.owner, loaded.declared_by) == ("family-benefits", "world")


async def test_history_reads_are_ordered_and_list_every_reference_in_force(directory: Directory) -> None:
    store = directory.store
    await store.declare_many(
        [
            holding("family-benefits", ANNA, "income"),
            holding("employment-office", ANNA, "civil-status"),
            client("employment-office", ANNA),
        ],
        "importer",
        AT,
    )
    holdings = [(item.declaration.name, item.declaration.owner) for item in await store.holdings_of(ANNA, AT)]
    assert holdings == [
        ("civil-status", "employment-office"),
        ("civil-status", "population-register"),
        ("income", "family-benefits"),
    ]
    relationships = await store.relationships_of(ANNA, AT)
    assert [(item.declaration.owner, item.declared_by) for item in relationships] == [
        ("employment-office", "importer"),
        ("family-benefits", "world"),
    ]
