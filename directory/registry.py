"""The registry administrators keep: agencies (name, adapter URL, active or suspended), data categories (and whether
each is sealed, every change kept as a version of its own), purposes and capacities. Reading what an administrator
asks for is pure (the `parse_` functions); `Registry` writes it and moves the directory version in the same
transaction, so every hub process sees the change on its next request.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from directory.keys import REGISTRATION_FIELDS, KeyRecord, KeyRegistration, parse_registration
from directory.models import Agency, Capacity, Category, CategoryChange, PrincipalKey, Purpose
from directory.names import NAME
from directory.store import AgencyEntry, PurposeEntry, _bump

AGENCY_ID = re.compile(r"[a-z0-9][a-z0-9-]{1,62}")  # PROTOCOL.md's agency ids
STATUSES = ("active", "suspended")
MAX_NAME, MAX_URL, MAX_DESCRIPTION = 200, 500, 500  # the widths of their columns
MAX_EMBARGO_DAYS = 36_500
# A registry change's reason is kept whole in its audit record, whose `reason` column holds 63 characters.
MAX_REASON = 63
FIRST_KEY_FIELDS = REGISTRATION_FIELDS - {"overlap_s", "use"}  # a first key signs, and rotates nothing


class RegistryInvalid(ValueError):
    """A registration or change that cannot be made as written; the message says why."""


class RegistryConflict(Exception):
    """A registration of something already registered: an agency id, a name, a key id or a public key."""


@dataclass(frozen=True)
class Term:
    """A registered name of a vocabulary (a data category or a capacity) and what it means."""

    name: str
    description: str = ""
    sealed: bool | None = None  # a category's: whether its answers are sealed; None for a capacity

    def as_json(self) -> dict[str, Any]:
        document: dict[str, Any] = {"name": self.name, "description": self.description}
        return document if self.sealed is None else {**document, "sealed": self.sealed}


@dataclass(frozen=True)
class SealingChange:
    """A version of a category's sealing: whether it became sealed or plain, when, by whom and why."""

    category: str
    version: int
    sealed: bool
    changed_at: datetime
    changed_by: str
    reason: str

    def as_json(self) -> dict[str, Any]:
        at = self.changed_at.isoformat(timespec="seconds").replace("+00:00", "Z")
        return {
            "version": self.version,
            "sealed": self.sealed,
            "changed_at": at,
            "changed_by": self.changed_by,
            "reason": self.reason,
        }


@dataclass(frozen=True)
class AgencyRegistration:
    id: str
    name: str
    adapter_url: str
    key: KeyRegistration | None = None


@dataclass(frozen=True)
class AgencyChange:
    """What an update changes; None leaves a field as it is."""

    name: str | None = None
    adapter_url: str | None = None
    status: str | None = None


def agency_json(agency: AgencyEntry) -> dict[str, Any]:
    return {"id": agency.id, "name": agency.name, "adapter_url": agency.adapter_url, "status": agency.status}


def purpose_json(purpose: PurposeEntry) -> dict[str, Any]:
    return {
        "name": purpose.name,
        "description": purpose.description,
        "confidential": purpose.confidential,
        "embargo_days": purpose.embargo_days,
    }


def parse_reason(value: object) -> str:
    """The reason every registry change gives, trimmed."""
    if not isinstance(value, str) or not value.strip():
        raise RegistryInvalid("every registry change needs its reason")
    reason = value.strip()
    if len(reason) > MAX_REASON:
        raise RegistryInvalid(f"a registry change's reason is at most {MAX_REASON} characters (its audit record's)")
    return reason


def take_reason(document: Mapping[str, Any]) -> tuple[dict[str, Any], str]:
    """A change's body without its reason, and the reason."""
    return {name: value for name, value in document.items() if name != "reason"}, parse_reason(document.get("reason"))


def parse_agency(document: Mapping[str, Any], at: datetime) -> AgencyRegistration:
    """A new agency: `id`, `name`, `adapter_url`, and optionally its first `key` (a key registration)."""
    _fields(document, {"id", "name", "adapter_url"}, {"key"})
    agency_id = document["id"]
    if not isinstance(agency_id, str) or not AGENCY_ID.fullmatch(agency_id):
        raise RegistryInvalid("id must be 2 to 63 characters of [a-z0-9-], starting with a letter or digit")
    key = document.get("key")
    if key is not None:
        if not isinstance(key, dict):
            raise RegistryInvalid("key is a key registration: {key_id, public_key_pem, valid_from?, valid_until?}")
        _fields(key, {"key_id", "public_key_pem"}, FIRST_KEY_FIELDS, "key")
    return AgencyRegistration(
        agency_id,
        parse_display_name(document["name"]),
        parse_adapter_url(document["adapter_url"]),
        None if key is None else parse_registration(key, at),
    )


def parse_agency_change(document: Mapping[str, Any]) -> AgencyChange:
    """An update of an agency: any of `name`, `adapter_url`, `status` (`active` or `suspended`)."""
    _fields(document, set(), {"name", "adapter_url", "status"})
    if not document:
        raise RegistryInvalid("an update changes at least one of name, adapter_url, status")
    status = document.get("status")
    if "status" in document and status not in STATUSES:
        raise RegistryInvalid("status is active or suspended")
    return AgencyChange(
        parse_display_name(document["name"]) if "name" in document else None,
        parse_adapter_url(document["adapter_url"]) if "adapter_url" in document else None,
        status,
    )


def parse_term(document: Mapping[str, Any], kind: str) -> Term:
    """A new data category or capacity: `name` and optionally `description`."""
    _fields(document, {"name"}, {"description"})
    return Term(_vocabulary_name(document["name"], kind), _description(document.get("description")))


def parse_sealing(document: Mapping[str, Any]) -> bool:
    """A change of a category: `{"sealed": true | false}` (its reason taken apart first)."""
    _fields(document, {"sealed"}, set())
    if not isinstance(document["sealed"], bool):
        raise RegistryInvalid("sealed must be true or false")
    return bool(document["sealed"])


def parse_purpose(document: Mapping[str, Any]) -> PurposeEntry:
    """A new purpose: `name`, optionally `description`, and whether it is `confidential` (kept out of citizens'
    access logs, for `embargo_days` after each access, or for good without them)."""
    _fields(document, {"name"}, {"description", "confidential", "embargo_days"})
    confidential, embargo_days = document.get("confidential", False), document.get("embargo_days")
    if not isinstance(confidential, bool):
        raise RegistryInvalid("confidential must be true or false")
    if embargo_days is not None:
        if type(embargo_days) is not int or not 0 <= embargo_days <= MAX_EMBARGO_DAYS:
            raise RegistryInvalid(f"embargo_days must be a whole number of days from 0 to {MAX_EMBARGO_DAYS}")
        if not confidential:
            raise RegistryInvalid("embargo_days applies to a confidential purpose only")
    return PurposeEntry(
        _vocabulary_name(document["name"], "purpose"),
        _description(document.get("description")),
        confidential,
        embargo_days,
    )


def parse_display_name(value: object) -> str:
    if not isinstance(value, str) or not value.strip() or not value.isprintable() or len(value.strip()) > MAX_NAME:
        raise RegistryInvalid(f"name must be printable text of 1 to {MAX_NAME} characters")
    return value.strip()


def parse_adapter_url(value: object) -> str:
    """An adapter's base URL: absolute http or https, with a host, no credentials and no fragment."""
    if not isinstance(value, str) or not value or len(value) > MAX_URL or not value.isprintable() or " " in value:
        raise RegistryInvalid(f"adapter_url must be an http or https URL of at most {MAX_URL} characters")
    try:
        parts = urlsplit(value)
        port = parts.port  # reading it checks it
    except ValueError as error:
        raise RegistryInvalid("adapter_url is not a valid URL") from error
    if parts.scheme not in ("http", "https") or not parts.hostname or port == 0:
        raise RegistryInvalid("adapter_url must be an absolute http or https URL with a host")
    if parts.username is not None or parts.password is not None or parts.fragment or value.endswith("#"):
        raise RegistryInvalid("adapter_url carries no credentials and no fragment")
    return value


def _vocabulary_name(value: object, kind: str) -> str:
    if not isinstance(value, str) or not NAME.fullmatch(value):
        raise RegistryInvalid(f"a {kind} name is 1 to 63 characters of [a-z0-9-], starting with a letter or digit")
    return value


def _description(value: object) -> str:
    if value is None:
        return ""
    if not isinstance(value, str) or len(value) > MAX_DESCRIPTION:
        raise RegistryInvalid(f"description is text of at most {MAX_DESCRIPTION} characters")
    return value.strip()


def _fields(document: Mapping[str, Any], required: set[str], optional: set[str], within: str = "") -> None:
    where = f" in {within}" if within else ""
    unknown = sorted(set(document) - required - optional)
    if unknown:
        raise RegistryInvalid(f"unknown fields{where}: {', '.join(unknown)}")
    missing = sorted(required - set(document))
    if missing:
        raise RegistryInvalid(f"missing fields{where}: {', '.join(missing)}")


class Registry:
    """Writes and lists agencies, categories, purposes and capacities. Every write moves the directory version
    (so every hub process drops its cached reads on its next request) and calls `changed` (so this one does at
    once). Nothing here removes anything: an agency is suspended, never deleted, and names stay registered."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession], changed: Callable[[], None]) -> None:
        self._sessions = sessions
        self._changed = changed

    async def agencies(self) -> list[AgencyEntry]:
        async with self._sessions() as session:
            rows = (await session.scalars(select(Agency).order_by(Agency.id))).all()
        return [_agency(row) for row in rows]

    async def agency(self, agency_id: str) -> AgencyEntry | None:
        async with self._sessions() as session:
            row = await session.get(Agency, agency_id)
        return None if row is None else _agency(row)

    async def categories(self) -> list[Term]:
        async with self._sessions() as session:
            rows = (await session.scalars(select(Category).order_by(Category.name))).all()
        return [Term(row.name, row.description, row.sealed) for row in rows]

    async def category(self, name: str) -> Term | None:
        async with self._sessions() as session:
            row = await session.get(Category, name)
        return None if row is None else Term(row.name, row.description, row.sealed)

    async def seal_category(self, name: str, sealed: bool, by: str, reason: str, at: datetime) -> SealingChange | None:
        """Seal a category or make it plain again: a new version of it, kept with who made it and why (a change
        that changes nothing is no version). None when there is no such category."""
        made: list[SealingChange] = []

        async def write(session: AsyncSession) -> bool:
            row = await session.get(Category, name, with_for_update=True)
            if row is None:
                return False
            versions = select(CategoryChange).where(CategoryChange.category == name)
            last = (await session.scalars(versions.order_by(CategoryChange.version.desc()).limit(1))).first()
            if row.sealed == sealed and last is not None:
                made.append(_sealing_change(last))
                return False
            row.sealed = sealed
            change = CategoryChange(
                category=name,
                version=1 if last is None else last.version + 1,
                sealed=sealed,
                changed_at=at,
                changed_by=by,
                reason=reason,
            )
            session.add(change)
            made.append(_sealing_change(change))
            return True

        await self._write(write, f"category {name!r} changed meanwhile")
        return made[0] if made else None

    async def category_history(self, name: str) -> list[SealingChange]:
        """Every version of the category's sealing, oldest first."""
        query = select(CategoryChange).where(CategoryChange.category == name).order_by(CategoryChange.version)
        async with self._sessions() as session:
            return [_sealing_change(row) for row in (await session.scalars(query)).all()]

    async def purposes(self) -> list[PurposeEntry]:
        async with self._sessions() as session:
            rows = (await session.scalars(select(Purpose).order_by(Purpose.name))).all()
        return [PurposeEntry(row.name, row.description, row.confidential, row.embargo_days) for row in rows]

    async def capacities(self) -> list[Term]:
        async with self._sessions() as session:
            rows = (await session.scalars(select(Capacity).order_by(Capacity.name))).all()
        return [Term(row.name, row.description) for row in rows]

    async def register_agency(self, registration: AgencyRegistration) -> tuple[AgencyEntry, KeyRecord | None]:
        """The new agency, active, and its first key if the registration has one: both or neither."""
        key = registration.key

        async def write(session: AsyncSession) -> bool:
            if await session.get(Agency, registration.id) is not None:
                raise RegistryConflict(f"an agency {registration.id!r} is already registered")
            session.add(
                Agency(
                    id=registration.id, name=registration.name, adapter_url=registration.adapter_url, status="active"
                )
            )
            if key is not None:
                if await session.get(PrincipalKey, key.key_id) is not None:
                    raise RegistryConflict(f"key id {key.key_id!r} is already registered")
                taken = select(PrincipalKey.key_id).where(PrincipalKey.public_key_pem == key.public_key_pem)
                if (await session.scalars(taken.limit(1))).first() is not None:
                    raise RegistryConflict("this public key is already registered: every key pair serves one key id")
                session.add(
                    PrincipalKey(
                        key_id=key.key_id,
                        principal_kind="agency",
                        principal_id=registration.id,
                        public_key_pem=key.public_key_pem,
                        valid_from=key.valid_from,
                        valid_until=key.valid_until,
                        status="active",
                    )
                )
            return True

        await self._write(write, f"agency {registration.id!r} or its key is already registered")
        agency = AgencyEntry(registration.id, registration.name, registration.adapter_url, "active")
        record = (
            None
            if key is None
            else KeyRecord(
                key.key_id,
                "agency",
                registration.id,
                key.public_key_pem,
                key.valid_from,
                key.valid_until,
                "active",
                None,
                None,
                None,
            )
        )
        return agency, record

    async def update_agency(self, agency_id: str, change: AgencyChange) -> AgencyEntry | None:
        """The agency as changed; None when there is no such agency. Suspending a suspended agency (or resuming
        an active one) changes nothing and is no error."""
        updated: list[AgencyEntry] = []

        async def write(session: AsyncSession) -> bool:
            row = await session.get(Agency, agency_id)
            if row is None:
                return False
            if change.name is not None:
                row.name = change.name
            if change.adapter_url is not None:
                row.adapter_url = change.adapter_url
            if change.status is not None:
                row.status = change.status
            updated.append(_agency(row))
            return True

        await self._write(write, f"agency {agency_id!r} changed meanwhile")
        return updated[0] if updated else None

    async def add_category(self, category: Term) -> Term:
        await self._add(Category(name=category.name, description=category.description), "category", category.name)
        return Term(category.name, category.description, sealed=False)

    async def add_capacity(self, capacity: Term) -> Term:
        await self._add(Capacity(name=capacity.name, description=capacity.description), "capacity", capacity.name)
        return capacity

    async def add_purpose(self, purpose: PurposeEntry) -> PurposeEntry:
        row = Purpose(
            name=purpose.name,
            description=purpose.description,
            confidential=purpose.confidential,
            embargo_days=purpose.embargo_days,
        )
        await self._add(row, "purpose", purpose.name)
        return purpose

    async def _add(self, row: Category | Capacity | Purpose, kind: str, name: str) -> None:
        taken = f"a {kind} {name!r} is already registered"

        async def write(session: AsyncSession) -> bool:
            if await session.get(type(row), name) is not None:
                raise RegistryConflict(taken)
            session.add(row)
            return True

        await self._write(write, taken)

    async def _write(self, write: Callable[[AsyncSession], Awaitable[bool]], taken: str) -> None:
        """Run `write` in one transaction with the version's move (when it changed anything); a row another
        process inserted meanwhile is a conflict, as it would have been had it come first."""
        try:
            async with self._sessions() as session, session.begin():
                if await write(session):
                    await _bump(session)
        except IntegrityError as error:
            raise RegistryConflict(taken) from error
        finally:
            self._changed()


def _sealing_change(row: CategoryChange) -> SealingChange:
    return SealingChange(row.category, row.version, row.sealed, row.changed_at, row.changed_by, row.reason)


def _agency(row: Agency) -> AgencyEntry:
    return AgencyEntry(row.id, row.name, row.adapter_url, row.status)
