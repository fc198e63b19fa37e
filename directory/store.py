"""Reads and writes of the directory tables; the only code that touches them. The reads every exchange makes
are cached briefly (bounded, dropped by any write here); the tables themselves stay in the store.

Holdings and relationships are declarations, appended and never changed (directory/references.py): every read
of them folds the rows of a reference to its newest (`standing`) before asking whether it is in force."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any, NamedTuple, TypeVar, overload

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat, load_pem_public_key
from sqlalchemy import Connection, bindparam, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from broker.base.caches import CacheSettings, ReadThrough, VersionWatch
from broker.base.envelopes import b64url
from broker.base.signing import load_public_key
from broker.base.store import Lane
from broker.base.store.batching import Batching
from broker.base.store.plans import Plan, Rows
from directory.declaring import REFERENCES, Declared, Unchanged, Verdict, declare
from directory.keys import KeyRecord, KeyRegistration, retirement
from directory.models import (
    Agency,
    Capacity,
    Category,
    DirectoryVersion,
    Holding,
    Operator,
    PrincipalKey,
    Purpose,
    Relationship,
)
from directory.references import Declaration, DeclarationInvalid, Stated, in_force, standing

Result = TypeVar("Result")

KEYS = PrincipalKey.__table__
NameTable = type[Category] | type[Purpose] | type[Capacity]


@dataclass(frozen=True)
class AgencyEntry:
    id: str
    name: str
    adapter_url: str
    status: str


@dataclass(frozen=True)
class OperatorEntry:
    id: str
    name: str
    role: str
    status: str


@dataclass(frozen=True)
class PurposeEntry:
    name: str
    description: str
    confidential: bool
    embargo_days: int | None


@dataclass(frozen=True)
class KeyEntry:
    key_id: str
    principal_kind: str
    principal_id: str
    public_key: Ed25519PublicKey
    valid_from: datetime
    valid_until: datetime | None
    status: str


@dataclass(frozen=True)
class SealingKey:
    """An agency's X25519 key that sealed answers are encrypted to: its id and its raw public key, base64url."""

    key_id: str
    public_key: str
    valid_from: datetime
    valid_until: datetime | None


def sealing_key_in_force(keys: Sequence[SealingKey], at: datetime) -> SealingKey | None:
    """The key sealed answers go to at `at`: of the active keys valid then, the newest (during a rotation's
    overlap, the new one)."""
    valid = [key for key in keys if key.valid_from <= at and (key.valid_until is None or at < key.valid_until)]
    return max(valid, key=lambda key: (key.valid_from, key.key_id), default=None)


def key_refusal(key: KeyEntry | None, at: datetime) -> str | None:
    """Why a key cannot authenticate a request at `at`, or None when it can."""
    if key is None:
        return "the key id is not registered"
    if key.status != "active":
        return f"the key is {key.status}"
    if at < key.valid_from:
        return "the key is not valid yet"
    if key.valid_until is not None and at >= key.valid_until:
        return "the key has expired"
    return None


@dataclass(frozen=True)
class Period:
    """A holding or relationship as the directory now says it is (its standing declaration), before `at`
    decides whether it is in force."""

    value: Any  # the holder (AgencyEntry) or the capacity (str)
    declaration: Declaration


def current(periods: tuple[Period, ...], at: datetime) -> list[Any]:
    return [period.value for period in periods if in_force(period.declaration, at)]


def capacity_in_force(relationship: tuple[Period, ...], at: datetime) -> str | None:
    """The capacity of a relationship's periods in force at `at`, if one is."""
    capacities = current(relationship, at)
    return str(capacities[0]) if capacities else None


def holders_in_force(holding: tuple[Period, ...], at: datetime) -> list[AgencyEntry]:
    """The active holders of a holding's periods in force at `at`, in a stable order."""
    return sorted({holder.id: holder for holder in current(holding, at)}.values(), key=lambda holder: holder.id)


class Versions(NamedTuple):
    """The directory's two versions: moved by every write to principals and names, and to references."""

    principals: int
    references: int


class DirectoryStore:
    """What an exchange reads on every call (keys, principals, names, holders, relationships) goes through
    short-lived caches (broker/base/caches.py); every write here drops them, so this process sees it at once and
    other processes within the caches' time to live."""

    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], lane: Lane, cache: CacheSettings | None = None
    ) -> None:
        self._sessions = sessions
        self._lane = lane  # the reads exchanges make: no ORM session, one hand-off each
        self._declaring: Batching[Declared, Verdict] = Batching(self._declare)  # concurrent declarations, together
        cache = cache or CacheSettings()
        # Principals and names are few and every write to them moves the directory version: they are kept until
        # it moves. Holdings and relationships are a million rows read a subject at a time: kept briefly.
        watched = cache.watched()
        self._keys: ReadThrough[str, KeyEntry | None] = ReadThrough(watched)
        self._agencies: ReadThrough[str, AgencyEntry | None] = ReadThrough(watched)
        self._operators: ReadThrough[str, OperatorEntry | None] = ReadThrough(watched)
        self._names: ReadThrough[tuple[NameTable, str], bool] = ReadThrough(watched)
        self._sealed: ReadThrough[str, bool] = ReadThrough(watched)
        self._sealing_keys: ReadThrough[str, tuple[SealingKey, ...]] = ReadThrough(watched)
        self._agency_names: ReadThrough[None, Mapping[str, str]] = ReadThrough(watched)
        self._holdings: ReadThrough[tuple[str, str], tuple[Period, ...]] = ReadThrough(cache)
        self._relationships: ReadThrough[tuple[str, str], tuple[Period, ...]] = ReadThrough(cache)
        self._principal_caches = (
            self._keys,
            self._agencies,
            self._operators,
            self._names,
            self._agency_names,
            self._sealed,
            self._sealing_keys,
        )
        self._reference_caches = (self._holdings, self._relationships)
        # Every directory write moves one of the store's two versions, of principals and names or of references:
        # seeing one move drops that one's caches at once (an import of references leaves the keys cached).
        self._watch = VersionWatch(self._read_version, self._moved, cache)

    def forget(self) -> None:
        """Drop every cached read (after a write to the directory)."""
        for cache in (*self._principal_caches, *self._reference_caches):
            cache.clear()

    def _forget_references(self) -> None:
        for cache in self._reference_caches:
            cache.clear()

    def _moved(self, versions: Versions, seen: Versions | None) -> None:
        if seen is None or versions.principals != seen.principals:
            self.forget()  # cached holdings carry their holder's agency entry: they go too
        elif versions.references != seen.references:
            self._forget_references()

    async def key(self, key_id: str, follow: bool = True) -> KeyEntry | None:
        """The key, from the cache only while no process has written the directory since it was read: a
        revocation or a suspension committed anywhere counts here on the very next request (with the hub's
        default `cache_follow_s` of 0; within that many seconds with a positive one). Without `follow`, the
        caller reads the version itself later (an exchange: `facts`, `principals_version`)."""
        if follow:
            await self.follow()
        return await self._keys.get(key_id, partial(self._read_key, key_id))

    async def answering_key(self, key_id: str) -> KeyEntry | None:
        """The key a holder signed its answer with, within a request that has just read the directory's version
        (its authentication, or an exchange's read): the same view of the directory, without reading it again."""
        return await self.key(key_id, follow=False)

    async def follow(self) -> None:
        """Drop the cached reads when the directory version moved (a write by any hub process); the version is
        read at most every `CacheSettings.follow_s` seconds. Every request follows it (through `key`), and the
        hub follows it every second besides, so that what its background work reads is never older either."""
        await self._watch.check()

    async def _read_version(self) -> Versions:
        return await self._lane.read(_versions)

    async def _read_key(self, key_id: str) -> KeyEntry | None:
        row = await self._lane.read(lambda connection: connection.execute(KEY, {"key_id": key_id}).first())
        if row is None:
            return None
        return KeyEntry(
            row.key_id,
            row.principal_kind,
            row.principal_id,
            load_public_key(row.public_key_pem),
            row.valid_from,
            row.valid_until,
            row.status,
        )

    async def agency(self, agency_id: str) -> AgencyEntry | None:
        return await self._agencies.get(agency_id, partial(self._read_agency, agency_id))

    async def _read_agency(self, agency_id: str) -> AgencyEntry | None:
        row = await self._lane.read(lambda connection: connection.execute(AGENCY, {"id": agency_id}).first())
        return None if row is None else AgencyEntry(row.id, row.name, row.adapter_url, row.status)

    async def agencies(self) -> list[AgencyEntry]:
        async with self._sessions() as session:
            rows = (await session.scalars(select(Agency).order_by(Agency.id))).all()
        return [AgencyEntry(row.id, row.name, row.adapter_url, row.status) for row in rows]

    async def agency_names(self) -> Mapping[str, str]:
        """Every agency's registered name by its id, for the pages that show agencies: one cached read."""
        return await self._agency_names.get(None, self._read_agency_names)

    async def _read_agency_names(self) -> Mapping[str, str]:
        return {agency.id: agency.name for agency in await self.agencies()}

    async def operator(self, operator_id: str) -> OperatorEntry | None:
        return await self._operators.get(operator_id, partial(self._read_operator, operator_id))

    async def _read_operator(self, operator_id: str) -> OperatorEntry | None:
        async with self._sessions() as session:
            row = await session.get(Operator, operator_id)
        return None if row is None else OperatorEntry(row.id, row.name, row.role, row.status)

    async def category_exists(self, name: str) -> bool:
        return await self._names.get((Category, name), partial(self._exists, Category, name))

    async def purpose_exists(self, name: str) -> bool:
        return await self._names.get((Purpose, name), partial(self._exists, Purpose, name))

    async def capacity_exists(self, name: str) -> bool:
        return await self._names.get((Capacity, name), partial(self._exists, Capacity, name))

    async def category_sealed(self, name: str) -> bool:
        """Whether the category's answers are sealed (encrypted by the holder to the requester), kept until the
        directory's version moves."""
        return await self._sealed.get(name, partial(self._read_sealed, name))

    async def _read_sealed(self, name: str) -> bool:
        return bool(await self._lane.read(lambda connection: connection.execute(SEALED, {"name": name}).scalar()))

    async def sealing_key(self, agency: str, at: datetime) -> SealingKey | None:
        """The agency's X25519 key that sealed answers go to at `at`, if it has one (`sealing_key_in_force`)."""
        keys = await self._sealing_keys.get(agency, partial(self._read_sealing_keys, agency))
        return sealing_key_in_force(keys, at)

    async def _read_sealing_keys(self, agency: str) -> tuple[SealingKey, ...]:
        rows = await self._lane.read(lambda connection: connection.execute(SEALING_KEYS, {"id": agency}).all())
        return tuple(
            SealingKey(row.key_id, b64url(_raw_public_key(row.public_key_pem)), row.valid_from, row.valid_until)
            for row in rows
        )

    async def _exists(self, table: NameTable, name: str) -> bool:
        async with self._sessions() as session:
            return await session.get(table, name) is not None

    async def purposes(self) -> list[PurposeEntry]:
        async with self._sessions() as session:
            rows = (await session.scalars(select(Purpose).order_by(Purpose.name))).all()
        return [PurposeEntry(row.name, row.description, row.confidential, row.embargo_days) for row in rows]

    async def relationship(self, agency: str, subject: str, at: datetime) -> str | None:
        """The capacity in which `agency` currently has `subject` as a client, if it does."""
        periods = await self._relationships.get((agency, subject), partial(self._read_relationships, agency, subject))
        return capacity_in_force(periods, at)

    async def _read_relationships(self, agency: str, subject: str) -> tuple[Period, ...]:
        return await self._lane.read(partial(_relationship_periods, agency=agency, subject=subject))

    def facts(self, agency: str, subject: str, category: str) -> Plan[Facts]:
        """The read of what an exchange checks in the directory, for it to run with its other reads at once
        (broker/exchange/pipeline.py): the directory's versions (hand them to `saw`), `agency`'s relationship with
        `subject`, and who holds `category` for `subject`. Read afresh, never cached."""
        values = {"agency": agency, "subject": subject, "category": category}
        queries = ((VERSIONS, values), (RELATIONSHIP_PERIODS, values), (HOLDING_PERIODS, values))
        return Plan(queries, partial(_facts, agency=agency, subject=subject, category=category))

    def facts_of_many(self, agency: str, questions: Sequence[tuple[str, str]]) -> Plan[dict[tuple[str, str], Facts]]:
        """`facts` for many (subject, category) questions of one agency (a window of a batch), in one read of each
        table, whatever their number: each question's Facts, as `facts` would give it."""
        subjects = sorted({subject for subject, _ in questions})
        values = {"agency": agency, "subjects": subjects, "categories": sorted({category for _, category in questions})}
        queries: tuple[tuple[Any, Mapping[str, Any]], ...] = (
            (VERSIONS, {}),
            (RELATIONSHIPS_OF_MANY, values),
            (HOLDINGS_OF_MANY, values),
        )
        return Plan(queries, partial(_facts_of_many, agency=agency, questions=questions))

    def saw(self, versions: Versions) -> None:
        """Take the versions an exchange read (`facts`): the cached reads one moved are dropped, as `follow` drops
        them."""
        self._watch.saw(versions)

    @property
    def principals_version(self) -> int | None:
        """The version of principals and names the cached keys, principals and names were read at or after (None
        before the first is seen): a request checked against them and an exchange that then reads another version
        checks its principal again."""
        seen = self._watch.seen
        return None if seen is None else seen.principals

    async def related_agencies(self, subject: str, at: datetime) -> list[AgencyEntry]:
        """Active agencies with a relationship to `subject` in force at `at`, in a stable order: who hears of a
        change to the subject's data."""
        rows = await self._lane.read(lambda connection: connection.execute(RELATED, {"subject": subject}).all())
        agencies = {row.id: AgencyEntry(row.id, row.name, row.adapter_url, row.status) for row in rows}
        related = {
            stated.declaration.owner
            for stated in standing(_relationship(row, row.id, subject) for row in rows)
            if in_force(stated.declaration, at)
        }
        return [agencies[agency] for agency in sorted(related)]

    async def holders(self, subject: str, category: str, at: datetime) -> list[AgencyEntry]:
        """Active agencies that currently hold `category` for `subject`, in a stable order."""
        periods = await self._holdings.get((subject, category), partial(self._read_holdings, subject, category))
        return holders_in_force(periods, at)

    async def _read_holdings(self, subject: str, category: str) -> tuple[Period, ...]:
        return await self._lane.read(partial(_holding_periods, subject=subject, category=category))

    async def relationships_of(self, subject: str, at: datetime, as_of: datetime | None = None) -> list[Stated]:
        """The relationships with `subject` in force at `at`, as the directory stood at `as_of` (declarations
        recorded by then; None: all of them), by agency, capacity and start."""
        rows = await self._lane.read(
            lambda connection: connection.execute(RELATIONSHIPS_OF, {"subject": subject}).all()
        )
        return _in_force_then(
            (_relationship(row, row.agency, subject) for row in rows), at, as_of, lambda declaration: declaration.owner
        )

    async def holdings_of(self, subject: str, at: datetime, as_of: datetime | None = None) -> list[Stated]:
        """The holdings for `subject` in force at `at`, as the directory stood at `as_of` (None: now), by
        category, holder and start."""
        rows = await self._lane.read(lambda connection: connection.execute(HOLDINGS_OF, {"subject": subject}).all())
        return _in_force_then(
            (_holding(row, row.holder, subject, row.category) for row in rows),
            at,
            as_of,
            lambda declaration: declaration.name,
        )

    async def declare(self, declaration: Declaration, by: str, at: datetime) -> tuple[Stated, bool]:
        """Record `declaration`, made on the word of `by` at `at`, unless the newest declaration of its reference
        already says the same end (then nothing is written). The declaration that stands, and whether the
        reference is new (it was not in the directory before). DeclarationInvalid when the directory does not
        take it: an owner that is not an active registered agency, an unregistered category or capacity.
        Declarations made at the same time go to the store together, in one transaction."""
        verdict = await self._declaring((declaration, by, at))
        if verdict.reason is not None:
            raise DeclarationInvalid(verdict.reason)
        assert verdict.declared_at is not None and verdict.declared_by is not None  # noqa: S101 -- for the type checker: a declaration taken stands
        return Stated(declaration, verdict.declared_at, verdict.declared_by), verdict.created

    async def declare_many(self, declarations: Sequence[Declaration], by: str, at: datetime) -> list[str | None]:
        """Record a batch of declarations in one transaction, each as `declare` would: for each, None when it is
        applied (or the directory already said so), or why it is refused. A refused declaration does not stop
        the others; none is ever applied in part."""
        return [verdict.reason for verdict in await self._declare([(item, by, at) for item in declarations])]

    async def _declare(self, declared: list[Declared]) -> list[Verdict]:
        try:
            verdicts = await self._lane.write(partial(declare, declared=declared))
        except Unchanged as unchanged:
            return unchanged.verdicts
        self._forget_references()
        return verdicts

    async def load(self, world: Mapping[str, Any], at: datetime) -> None:  # noqa: C901 -- one pass per section
        """Add or update the directory part of a world file in one transaction. Nothing is removed, and nothing
        an administrator decided is undone: an agency or operator keeps its status unless the file states one,
        a registered key stays as it is unless the file revokes it."""
        async with self._sessions() as session, session.begin():
            for item in world.get("categories", []):
                await session.merge(Category(name=item["name"], description=item.get("description", "")))
            for item in world.get("purposes", []):
                await session.merge(
                    Purpose(
                        name=item["name"],
                        description=item.get("description", ""),
                        confidential=item.get("confidential", False),
                        embargo_days=item.get("embargo_days"),
                    )
                )
            for item in world.get("capacities", []):
                await session.merge(Capacity(name=item["name"], description=item.get("description", "")))
            declared = {item["name"] for item in world.get("capacities", [])}
            for name in sorted({item["capacity"] for item in world.get("relationships", [])} - declared):
                await session.merge(Capacity(name=name))
            for item in world.get("agencies", []):
                known = await session.get(Agency, item["id"])
                status = item.get("status", "active" if known is None else known.status)
                await session.merge(
                    Agency(id=item["id"], name=item["name"], adapter_url=item["adapter_url"], status=status)
                )
                for key in item.get("keys", []):
                    await _load_key(session, _key_row("agency", item["id"], key, at), at)
            for item in world.get("operators", []):
                known_operator = await session.get(Operator, item["id"])
                status = item.get("status", "active" if known_operator is None else known_operator.status)
                await session.merge(Operator(id=item["id"], name=item["name"], role=item["role"], status=status))
                for key in item.get("keys", []):
                    await _load_key(session, _key_row("operator", item["id"], key, at), at)
            for item in world.get("holdings", []):
                for subject in item["subjects"]:
                    session.add(
                        Holding(
                            holder=item["holder"],
                            category=item["category"],
                            subject=subject,
                            valid_from=_time(item.get("valid_from"), at),
                            valid_until=_time(item.get("valid_until")),
                            declared_at=at,
                            declared_by="world",
                        )
                    )
            for item in world.get("relationships", []):
                for subject in item["subjects"]:
                    session.add(
                        Relationship(
                            agency=item["agency"],
                            subject=subject,
                            capacity=item["capacity"],
                            valid_from=_time(item.get("valid_from"), at),
                            valid_until=_time(item.get("valid_until")),
                            declared_at=at,
                            declared_by="world",
                        )
                    )
            await _bump(session)
        self.forget()

    async def set_agency_status(self, agency_id: str, status: str) -> None:
        async with self._sessions() as session, session.begin():
            row = await session.get(Agency, agency_id)
            if row is None:
                raise KeyError(agency_id)
            row.status = status
            await _bump(session)
        self.forget()

    async def keys_of(self, principal_id: str) -> list[KeyRecord]:
        """Every key ever registered for the principal, oldest first, revoked and expired ones included."""
        query = (
            select(PrincipalKey)
            .where(PrincipalKey.principal_id == principal_id)
            .order_by(PrincipalKey.valid_from, PrincipalKey.key_id)
        )
        async with self._sessions() as session:
            return [_key_record(row) for row in (await session.scalars(query)).all()]

    async def add_key(self, kind: str, principal_id: str, registration: KeyRegistration, at: datetime) -> KeyRecord:
        """Register a public key; for a rotation (`registration.overlap`), the principal's other active keys
        end after the overlap, in the same transaction. KeyConflict when the key id is taken or the public key
        is already registered."""
        try:
            async with self._sessions() as session, session.begin():
                if await session.get(PrincipalKey, registration.key_id) is not None:
                    raise KeyConflict(f"key id {registration.key_id!r} is already registered")
                taken = select(PrincipalKey.key_id).where(PrincipalKey.public_key_pem == registration.public_key_pem)
                if (await session.scalars(taken.limit(1))).first() is not None:
                    raise KeyConflict("this public key is already registered: every key pair serves one key id")
                if registration.overlap is not None:
                    others = select(PrincipalKey).where(
                        PrincipalKey.principal_id == principal_id,
                        PrincipalKey.status == "active",
                        PrincipalKey.use == registration.use,
                    )
                    for other in (await session.scalars(others)).all():
                        end = retirement(other.valid_until, at, registration.overlap)
                        if end is not None:
                            other.valid_until = end
                row = PrincipalKey(
                    key_id=registration.key_id,
                    principal_kind=kind,
                    principal_id=principal_id,
                    public_key_pem=registration.public_key_pem,
                    use=registration.use,
                    valid_from=registration.valid_from,
                    valid_until=registration.valid_until,
                    status="active",
                )
                session.add(row)
                await _bump(session)
        except IntegrityError as error:  # the same key id registered by another process meanwhile
            raise KeyConflict(f"key id {registration.key_id!r} is already registered") from error
        finally:
            self.forget()
        return _key_record(row)

    async def revoke_key(self, principal_id: str, key_id: str, by: str, reason: str, at: datetime) -> KeyRecord | None:
        """Revoke a key of the principal for good; None when it has no such key, KeyConflict when it was
        already revoked. Every hub process refuses the key from its next request on (see `key`)."""
        async with self._sessions() as session, session.begin():
            row = await session.get(PrincipalKey, key_id)
            if row is None or row.principal_id != principal_id:
                return None
            if row.status == "revoked":
                raise KeyConflict(f"key {key_id!r} was already revoked")
            row.status, row.revoked_at, row.revoked_by, row.revocation_reason = "revoked", at, by, reason
            await _bump(session)
        self.forget()
        return _key_record(row)


# The reads every exchange makes, built once: each call only binds its values.
PRINCIPALS = 1  # the directory_version row of principals and names (REFERENCES: of holdings and relationships)
BUMP = update(DirectoryVersion).where(DirectoryVersion.id == PRINCIPALS).values(version=DirectoryVersion.version + 1)
VERSIONS = select(DirectoryVersion.id, DirectoryVersion.version).where(
    DirectoryVersion.id.in_((PRINCIPALS, REFERENCES))
)
KEY = select(KEYS).where(KEYS.c.key_id == bindparam("key_id"), KEYS.c.use == "sign")  # a sealing key never signs
SEALING_KEYS = select(KEYS).where(
    KEYS.c.principal_id == bindparam("id"),
    KEYS.c.principal_kind == "agency",
    KEYS.c.use == "seal",
    KEYS.c.status == "active",
)
SEALED = select(Category.sealed).where(Category.name == bindparam("name"))
AGENCY = select(Agency.id, Agency.name, Agency.adapter_url, Agency.status).where(Agency.id == bindparam("id"))
# Declarations in the order the hub recorded them (`id`): `standing` keeps the last of each reference.
RELATIONSHIP_COLUMNS = (
    Relationship.capacity,
    Relationship.valid_from,
    Relationship.valid_until,
    Relationship.declared_at,
    Relationship.declared_by,
)
HOLDING_COLUMNS = (Holding.valid_from, Holding.valid_until, Holding.declared_at, Holding.declared_by)
AGENCY_COLUMNS = (Agency.id, Agency.name, Agency.adapter_url, Agency.status)
RELATIONSHIP_PERIODS = (
    select(*RELATIONSHIP_COLUMNS)
    .where(Relationship.agency == bindparam("agency"), Relationship.subject == bindparam("subject"))
    .order_by(Relationship.id)
)
HOLDING_PERIODS = (
    select(*AGENCY_COLUMNS, *HOLDING_COLUMNS)
    .join(Holding, Holding.holder == Agency.id)
    .where(Holding.subject == bindparam("subject"), Holding.category == bindparam("category"))
    .where(Agency.status == "active")
    .order_by(Holding.id)
)
RELATIONSHIPS_OF_MANY = (
    select(Relationship.subject, *RELATIONSHIP_COLUMNS)
    .where(Relationship.agency == bindparam("agency"), Relationship.subject.in_(bindparam("subjects", expanding=True)))
    .order_by(Relationship.id)
)
HOLDINGS_OF_MANY = (
    select(Holding.subject, Holding.category, *AGENCY_COLUMNS, *HOLDING_COLUMNS)
    .join(Holding, Holding.holder == Agency.id)
    .where(Holding.subject.in_(bindparam("subjects", expanding=True)))
    .where(Holding.category.in_(bindparam("categories", expanding=True)), Agency.status == "active")
    .order_by(Holding.id)
)
RELATED = (
    select(*AGENCY_COLUMNS, *RELATIONSHIP_COLUMNS)
    .join(Relationship, Relationship.agency == Agency.id)
    .where(Relationship.subject == bindparam("subject"), Agency.status == "active")
    .order_by(Relationship.id)
)
RELATIONSHIPS_OF = (
    select(Relationship.agency, *RELATIONSHIP_COLUMNS)
    .where(Relationship.subject == bindparam("subject"))
    .order_by(Relationship.id)
)
HOLDINGS_OF = (
    select(Holding.holder, Holding.category, *HOLDING_COLUMNS)
    .where(Holding.subject == bindparam("subject"))
    .order_by(Holding.id)
)


def _relationship(row: Any, agency: str, subject: str) -> Stated:
    declaration = Declaration("relationship", agency, subject, row.capacity, row.valid_from, row.valid_until)
    return Stated(declaration, row.declared_at, row.declared_by)


def _holding(row: Any, holder: str, subject: str, category: str) -> Stated:
    declaration = Declaration("holding", holder, subject, category, row.valid_from, row.valid_until)
    return Stated(declaration, row.declared_at, row.declared_by)


def _relationship_periods(connection: Connection, agency: str, subject: str) -> tuple[Period, ...]:
    return _relationship_periods_of(
        connection.execute(RELATIONSHIP_PERIODS, {"agency": agency, "subject": subject}).all(), agency, subject
    )


def _relationship_periods_of(rows: Rows, agency: str, subject: str) -> tuple[Period, ...]:
    return tuple(
        Period(stated.declaration.name, stated.declaration)
        for stated in standing(_relationship(row, agency, subject) for row in rows)
    )


def _holding_periods(connection: Connection, subject: str, category: str) -> tuple[Period, ...]:
    return _holding_periods_of(
        connection.execute(HOLDING_PERIODS, {"subject": subject, "category": category}).all(), subject, category
    )


def _holding_periods_of(rows: Rows, subject: str, category: str) -> tuple[Period, ...]:
    holders = {row.id: AgencyEntry(row.id, row.name, row.adapter_url, row.status) for row in rows}
    return tuple(
        Period(holders[stated.declaration.owner], stated.declaration)
        for stated in standing(_holding(row, row.id, subject, category) for row in rows)
    )


def _in_force_then(
    stated: Iterable[Stated], at: datetime, as_of: datetime | None, first: Callable[[Declaration], str]
) -> list[Stated]:
    """The standing declarations as of `as_of` in force at `at`, ordered by `first`, then the other name, then
    start."""
    found = [item for item in standing(stated, as_of) if in_force(item.declaration, at)]
    return sorted(
        found,
        key=lambda item: (
            first(item.declaration),
            item.declaration.owner,
            item.declaration.name,
            item.declaration.valid_from,
        ),
    )


class Facts(NamedTuple):
    """What an exchange checks in the directory, read together (`DirectoryStore.facts`)."""

    versions: Versions
    relationship: tuple[Period, ...]
    holding: tuple[Period, ...]


def _versions(connection: Connection) -> Versions:
    return _versions_of(connection.execute(VERSIONS).all())


def _versions_of(rows: Rows) -> Versions:
    moved = dict(rows)
    return Versions(moved.get(PRINCIPALS, 0), moved.get(REFERENCES, 0))


def _facts(rows: Sequence[Rows], agency: str, subject: str, category: str) -> Facts:
    versions, relationship, holding = rows
    return Facts(
        _versions_of(versions),
        _relationship_periods_of(relationship, agency, subject),
        _holding_periods_of(holding, subject, category),
    )


def _facts_of_many(
    rows: Sequence[Rows], agency: str, questions: Sequence[tuple[str, str]]
) -> dict[tuple[str, str], Facts]:
    versions, relationships, holdings = rows
    related: dict[str, list[Any]] = {}
    held: dict[tuple[str, str], list[Any]] = {}
    for row in relationships:
        related.setdefault(row.subject, []).append(row)
    for row in holdings:
        held.setdefault((row.subject, row.category), []).append(row)
    seen = _versions_of(versions)
    return {
        (subject, category): Facts(
            seen,
            _relationship_periods_of(related.get(subject, ()), agency, subject),
            _holding_periods_of(held.get((subject, category), ()), subject, category),
        )
        for subject, category in questions
    }


class KeyConflict(Exception):
    """A key registration or revocation that contradicts the keys already registered."""


async def _bump(session: AsyncSession) -> None:
    """Move the directory version on, in the transaction of the write, so every process drops its caches."""
    moved = await session.execute(BUMP)
    if not moved.rowcount:  # type: ignore[attr-defined]
        session.add(DirectoryVersion(id=1, version=1))


async def _load_key(session: AsyncSession, key: PrincipalKey, at: datetime) -> None:
    """A key of a world file: added when new; a key already registered stays as it is (revoked, expired or retired
    by a rotation), except that the file may revoke it. Loading a file again never undoes a revocation."""
    known = await session.get(PrincipalKey, key.key_id)
    if known is None:
        session.add(key)
    elif key.status == "revoked" and known.status != "revoked":
        known.status, known.revoked_at, known.revoked_by = "revoked", at, "world"


def _key_record(row: PrincipalKey) -> KeyRecord:
    return KeyRecord(
        row.key_id,
        row.principal_kind,
        row.principal_id,
        row.public_key_pem,
        row.valid_from,
        row.valid_until,
        row.status,
        row.revoked_at,
        row.revoked_by,
        row.revocation_reason,
        row.use,
    )


def _key_row(kind: str, principal_id: str, key: Mapping[str, Any], at: datetime) -> PrincipalKey:
    return PrincipalKey(
        key_id=key["key_id"],
        principal_kind=kind,
        principal_id=principal_id,
        public_key_pem=key["public_key_pem"],
        use=key.get("use", "sign"),
        valid_from=_time(key.get("valid_from"), at),
        valid_until=_time(key.get("valid_until")),
        status=key.get("status", "active"),
    )


@overload
def _time(value: str | datetime | None, default: datetime) -> datetime: ...
@overload
def _time(value: str | datetime | None) -> datetime | None: ...
def _time(value: str | datetime | None, default: datetime | None = None) -> datetime | None:
    if value is None:
        return default
    return value if isinstance(value, datetime) else datetime.fromisoformat(value)


def _raw_public_key(pem: str) -> bytes:
    return load_pem_public_key(pem.encode()).public_bytes(Encoding.Raw, PublicFormat.Raw)
