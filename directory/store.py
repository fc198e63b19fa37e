"""Reads and writes of the directory tables; the only code that touches them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, overload

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from broker.signing import load_public_key
from directory.models import Agency, Category, Holding, Operator, PrincipalKey, Purpose, Relationship


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


def is_current(valid_from: datetime, valid_until: datetime | None, at: datetime) -> bool:
    """A period [valid_from, valid_until) contains `at`; an open end never closes."""
    return valid_from <= at and (valid_until is None or at < valid_until)


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


class DirectoryStore:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def key(self, key_id: str) -> KeyEntry | None:
        async with self._sessions() as session:
            row = await session.get(PrincipalKey, key_id)
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
        async with self._sessions() as session:
            row = await session.get(Agency, agency_id)
        return None if row is None else AgencyEntry(row.id, row.name, row.adapter_url, row.status)

    async def agencies(self) -> list[AgencyEntry]:
        async with self._sessions() as session:
            rows = (await session.scalars(select(Agency).order_by(Agency.id))).all()
        return [AgencyEntry(row.id, row.name, row.adapter_url, row.status) for row in rows]

    async def operator(self, operator_id: str) -> OperatorEntry | None:
        async with self._sessions() as session:
            row = await session.get(Operator, operator_id)
        return None if row is None else OperatorEntry(row.id, row.name, row.role, row.status)

    async def category_exists(self, name: str) -> bool:
        async with self._sessions() as session:
            return await session.get(Category, name) is not None

    async def purpose_exists(self, name: str) -> bool:
        async with self._sessions() as session:
            return await session.get(Purpose, name) is not None

    async def purposes(self) -> list[PurposeEntry]:
        async with self._sessions() as session:
            rows = (await session.scalars(select(Purpose).order_by(Purpose.name))).all()
        return [PurposeEntry(row.name, row.description, row.confidential, row.embargo_days) for row in rows]

    async def relationship(self, agency: str, subject: str, at: datetime) -> str | None:
        """The capacity in which `agency` currently has `subject` as a client, if it does."""
        query = (
            select(Relationship.capacity)
            .where(Relationship.agency == agency, Relationship.subject == subject)
            .where(Relationship.valid_from <= at)
            .where(or_(Relationship.valid_until.is_(None), Relationship.valid_until > at))
            .limit(1)
        )
        async with self._sessions() as session:
            return (await session.scalars(query)).first()

    async def related_agencies(self, subject: str, at: datetime) -> list[AgencyEntry]:
        """Active agencies with a current relationship to `subject`, in a stable order."""
        query = (
            select(Agency)
            .join(Relationship, Relationship.agency == Agency.id)
            .where(Relationship.subject == subject, Agency.status == "active")
            .where(Relationship.valid_from <= at)
            .where(or_(Relationship.valid_until.is_(None), Relationship.valid_until > at))
            .order_by(Agency.id)
        )
        async with self._sessions() as session:
            rows = (await session.scalars(query)).unique().all()
        return [AgencyEntry(row.id, row.name, row.adapter_url, row.status) for row in rows]

    async def holders(self, subject: str, category: str, at: datetime) -> list[AgencyEntry]:
        """Active agencies that currently hold `category` for `subject`, in a stable order."""
        query = (
            select(Agency)
            .join(Holding, Holding.holder == Agency.id)
            .where(Holding.subject == subject, Holding.category == category, Agency.status == "active")
            .where(Holding.valid_from <= at)
            .where(or_(Holding.valid_until.is_(None), Holding.valid_until > at))
            .order_by(Agency.id)
        )
        async with self._sessions() as session:
            rows = (await session.scalars(query)).unique().all()
        return [AgencyEntry(row.id, row.name, row.adapter_url, row.status) for row in rows]

    async def load(self, world: Mapping[str, Any], at: datetime) -> None:
        """Insert or replace the directory part of a world file in one transaction."""
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
            for item in world.get("agencies", []):
                await session.merge(
                    Agency(
                        id=item["id"],
                        name=item["name"],
                        adapter_url=item["adapter_url"],
                        status=item.get("status", "active"),
                    )
                )
                for key in item.get("keys", []):
                    await session.merge(_key_row("agency", item["id"], key, at))
            for item in world.get("operators", []):
                await session.merge(
                    Operator(
                        id=item["id"],
                        name=item["name"],
                        role=item["role"],
                        status=item.get("status", "active"),
                    )
                )
                for key in item.get("keys", []):
                    await session.merge(_key_row("operator", item["id"], key, at))
            for item in world.get("holdings", []):
                for subject in item["subjects"]:
                    session.add(
                        Holding(
                            holder=item["holder"],
                            category=item["category"],
                            subject=subject,
                            valid_from=_time(item.get("valid_from"), at),
                            valid_until=_time(item.get("valid_until")),
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
                        )
                    )

    async def set_agency_status(self, agency_id: str, status: str) -> None:
        async with self._sessions() as session, session.begin():
            row = await session.get(Agency, agency_id)
            if row is None:
                raise KeyError(agency_id)
            row.status = status


def _key_row(kind: str, principal_id: str, key: Mapping[str, Any], at: datetime) -> PrincipalKey:
    return PrincipalKey(
        key_id=key["key_id"],
        principal_kind=kind,
        principal_id=principal_id,
        public_key_pem=key["public_key_pem"],
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
