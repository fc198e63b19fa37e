"""The registry on a migrated SQLite file and PostgreSQL database: agencies registered (with a first key, both or
neither), renamed, moved and suspended; categories, purposes and capacities added; conflicts refused with nothing
written; and every change seen by another store on the same database (another hub process) once it follows the
directory version, and by this process at once. What an administrator may ask for is read by pure functions."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, async_sessionmaker

from broker.base.caches import CacheSettings
from broker.base.signing import generate_key, public_key_pem
from broker.base.store import Lane, create_engine
from broker.schema.migrations import upgrade
from directory.keys import KeyInvalid
from directory.registry import (
    AgencyChange,
    Registry,
    RegistryConflict,
    RegistryInvalid,
    Term,
    parse_agency,
    parse_agency_change,
    parse_purpose,
    parse_reason,
    parse_term,
    take_reason,
)
from directory.store import AgencyEntry, DirectoryStore, PurposeEntry

AT = datetime(2026, 11, 22, 12, tzinfo=UTC)
URL = "https://pension.example/crossroads"


@dataclass
class Process:
    """What one hub process holds of the directory: its cached store and its registry."""

    directory: DirectoryStore
    registry: Registry


@dataclass
class Processes:
    here: Process
    other: Process


@pytest.fixture
async def processes(database_url: str) -> AsyncIterator[Processes]:
    """Two processes on one migrated store, each with its own engine, caches and registry, as hub processes have."""
    engines: list[AsyncEngine] = []

    async def open_one() -> Process:
        engine = create_engine(database_url)
        if not engines:
            await upgrade(engine)
        engines.append(engine)
        sessions = async_sessionmaker(engine, expire_on_commit=False)
        directory = DirectoryStore(sessions, Lane(engine), CacheSettings())
        return Process(directory, Registry(sessions, directory.forget))

    yield Processes(await open_one(), await open_one())
    for engine in engines:
        await engine.dispose()


def _agency(agency_id: str = "pension-fund", key: dict[str, Any] | None = None) -> dict[str, Any]:
    document: dict[str, Any] = {"id": agency_id, "name": "Pension Fund", "adapter_url": URL}
    if key is not None:
        document["key"] = key
    return document


def _key(key_id: str, pem: str | None = None) -> dict[str, str]:
    return {"key_id": key_id, "public_key_pem": pem or public_key_pem(generate_key().public_key())}


async def test_an_agency_is_registered_with_its_first_key(processes: Processes) -> None:
    here, other = processes.here, processes.other
    assert await other.directory.agency("pension-fund") is None  # cached: the other process read it before
    agency, key = await here.registry.register_agency(parse_agency(_agency(key=_key("pension-fund-1")), AT))
    assert agency == AgencyEntry("pension-fund", "Pension Fund", URL, "active")
    assert key is not None and (key.key_id, key.principal_id, key.status) == (
        "pension-fund-1",
        "pension-fund",
        "active",
    )
    assert await here.registry.agencies() == [agency]
    assert await here.directory.agency("pension-fund") == agency
    [stored] = await here.directory.keys_of("pension-fund")
    assert stored == key
    await other.directory.follow()  # the next request of the other process
    assert await other.directory.agency("pension-fund") == agency
    found = await other.directory.key("pension-fund-1")
    assert found is not None and found.principal_id == "pension-fund"


async def test_a_registration_is_whole_or_nothing(processes: Processes) -> None:
    registry, directory = processes.here.registry, processes.here.directory
    taken = _key("taken-1")
    await registry.register_agency(parse_agency(_agency("first-agency", taken), AT))
    for refused, why in (
        (_agency("first-agency"), "agency 'first-agency' is already registered"),
        (_agency("second-agency", _key("taken-1")), "key id 'taken-1'"),
        (_agency("second-agency", _key("other-1", taken["public_key_pem"])), "public key is already registered"),
    ):
        with pytest.raises(RegistryConflict, match=why):
            await registry.register_agency(parse_agency(refused, AT))
    assert [agency.id for agency in await registry.agencies()] == ["first-agency"]
    assert await directory.key("other-1") is None
    await registry.register_agency(parse_agency(_agency("second-agency"), AT))  # no key: an agency alone
    assert await directory.keys_of("second-agency") == []


async def test_an_agency_is_renamed_moved_suspended_and_resumed(processes: Processes) -> None:
    here, other = processes.here, processes.other
    await here.registry.register_agency(parse_agency(_agency(), AT))
    assert (await other.directory.agency("pension-fund")) is not None  # now cached by the other process
    moved = await here.registry.update_agency(
        "pension-fund", parse_agency_change({"name": "Federal Pensions", "adapter_url": "http://10.0.0.7:8090"})
    )
    assert moved == AgencyEntry("pension-fund", "Federal Pensions", "http://10.0.0.7:8090", "active")
    suspended = await here.registry.update_agency("pension-fund", AgencyChange(status="suspended"))
    assert suspended is not None and suspended.status == "suspended" and suspended.name == "Federal Pensions"
    assert await here.directory.agency("pension-fund") == suspended  # this process at once
    await other.directory.follow()
    assert await other.directory.agency("pension-fund") == suspended  # the other on its next request
    again = await here.registry.update_agency("pension-fund", AgencyChange(status="suspended"))
    assert again == suspended  # suspending a suspended agency changes nothing and is no error
    resumed = await here.registry.update_agency("pension-fund", AgencyChange(status="active"))
    assert resumed is not None and resumed.status == "active"
    assert await here.registry.update_agency("nobody-here", AgencyChange(status="active")) is None


async def test_names_are_registered_once(processes: Processes) -> None:
    here, other = processes.here, processes.other
    assert not await other.directory.category_exists("pension")
    assert not await here.directory.purpose_exists("fraud-investigation")
    await here.registry.add_category(parse_term({"name": "pension", "description": "Pension rights"}, "category"))
    await here.registry.add_category(Term("civil-status"))
    fraud = parse_purpose({"name": "fraud-investigation", "confidential": True, "embargo_days": 365})
    await here.registry.add_purpose(fraud)
    await here.registry.add_capacity(Term("pensioner", "Receives a pension"))
    assert await here.directory.purpose_exists("fraud-investigation")  # this process at once
    await other.directory.follow()
    assert await other.directory.category_exists("pension")  # the other once it follows
    assert await here.registry.categories() == [
        Term("civil-status", sealed=False),
        Term("pension", "Pension rights", sealed=False),
    ]
    assert await here.registry.purposes() == [PurposeEntry("fraud-investigation", "", True, 365)]
    assert await here.registry.capacities() == [Term("pensioner", "Receives a pension")]
    assert await here.directory.capacity_exists("pensioner")
    with pytest.raises(RegistryConflict, match="category 'pension'"):
        await here.registry.add_category(Term("pension", "again"))
    with pytest.raises(RegistryConflict, match="purpose"):
        await here.registry.add_purpose(PurposeEntry("fraud-investigation", "", False, None))
    with pytest.raises(RegistryConflict, match="capacity"):
        await here.registry.add_capacity(Term("pensioner"))
    assert await here.registry.categories() == [
        Term("civil-status", sealed=False),
        Term("pension", "Pension rights", sealed=False),
    ]


@pytest.mark.parametrize(
    ("document", "why"),
    [
        ({"id": "x", "name": "X", "adapter_url": URL}, "id must be 2 to 63"),
        ({"id": "Pension", "name": "X", "adapter_url": URL}, "id must be"),
        ({"id": "pension-fund", "adapter_url": URL}, "missing fields: name"),
        ({"id": "pension-fund", "name": "X", "adapter_url": URL, "roles": []}, "unknown fields: roles"),
        ({"id": "pension-fund", "name": " ", "adapter_url": URL}, "name must be"),
        ({"id": "pension-fund", "name": "X\n", "adapter_url": URL}, "name must be"),
        ({"id": "pension-fund", "name": "X" * 201, "adapter_url": URL}, "name must be"),
        ({"id": "pension-fund", "name": "X", "adapter_url": "ftp://pension.example"}, "http or https"),
        ({"id": "pension-fund", "name": "X", "adapter_url": "https://"}, "with a host"),
        ({"id": "pension-fund", "name": "X", "adapter_url": "/crossroads"}, "absolute"),
        ({"id": "pension-fund", "name": "X", "adapter_url": "https://user:pw@pension.example"}, "credentials"),
        ({"id": "pension-fund", "name": "X", "adapter_url": "https://pension.example/#top"}, "fragment"),
        ({"id": "pension-fund", "name": "X", "adapter_url": "https://pension.example:99999"}, "not a valid URL"),
        ({"id": "pension-fund", "name": "X", "adapter_url": "https://[::1"}, "not a valid URL"),
        ({"id": "pension-fund", "name": "X", "adapter_url": "https://p.example/" + "a" * 500}, "at most 500"),
        ({"id": "pension-fund", "name": "X", "adapter_url": URL, "key": "pem"}, "key is a key registration"),
        ({"id": "pension-fund", "name": "X", "adapter_url": URL, "key": {"key_id": "k-1"}}, "missing fields in key"),
        (
            {"id": "pension-fund", "name": "X", "adapter_url": URL, "key": {**_key("k-1"), "overlap_s": 60}},
            "unknown fields in key: overlap_s",
        ),
    ],
)
def test_what_an_agency_registration_must_hold(document: dict[str, Any], why: str) -> None:
    with pytest.raises(RegistryInvalid, match=why):
        parse_agency(document, AT)


def test_a_first_key_is_read_as_any_key_registration() -> None:
    with pytest.raises(KeyInvalid, match="public_key_pem"):
        parse_agency(_agency(key={"key_id": "k-1", "public_key_pem": "not a key"}), AT)
    registration = parse_agency(_agency(key=_key("k-1")), AT)
    assert registration.key is not None and registration.key.valid_from == AT and registration.key.overlap is None


@pytest.mark.parametrize(
    ("document", "why"),
    [
        ({}, "at least one"),
        ({"status": "gone"}, "active or suspended"),
        ({"id": "other"}, "unknown fields: id"),
        ({"adapter_url": "mailto:x@example.org"}, "http or https"),
    ],
)
def test_what_an_agency_change_must_hold(document: dict[str, Any], why: str) -> None:
    with pytest.raises(RegistryInvalid, match=why):
        parse_agency_change(document)


def test_names_and_purposes_read_as_asked() -> None:
    assert parse_term({"name": "pension"}, "category") == Term("pension", "")
    assert parse_purpose({"name": "audit", "description": " Internal audit "}) == PurposeEntry(
        "audit", "Internal audit", False, None
    )
    for document, why in (
        ({"name": "Pension"}, "a category name"),
        ({"name": "pension", "description": "x" * 501}, "at most 500"),
        ({"name": "pension", "colour": "red"}, "unknown fields: colour"),
    ):
        with pytest.raises(RegistryInvalid, match=why):
            parse_term(document, "category")
    for document, why in (
        ({"name": "audit", "embargo_days": 30}, "confidential purpose only"),
        ({"name": "audit", "confidential": "yes"}, "true or false"),
        ({"name": "audit", "confidential": True, "embargo_days": -1}, "whole number"),
        ({"name": "audit", "confidential": True, "embargo_days": 1.5}, "whole number"),
        ({"name": "audit", "confidential": True, "embargo_days": True}, "whole number"),
    ):
        with pytest.raises(RegistryInvalid, match=why):
            parse_purpose(document)


def test_every_change_gives_a_reason_its_audit_record_can_hold() -> None:
    assert take_reason({"name": "pension", "reason": " decree 2026/41 "}) == ({"name": "pension"}, "decree 2026/41")
    assert parse_reason("x" * 63) == "x" * 63
    for reason in (None, "", "   ", 17, "x" * 64):
        with pytest.raises(RegistryInvalid, match="reason"):
            parse_reason(reason)
