"""Each store adapter against a real store: a SQLite database (through the async driver and through a sync
driver in a thread), a CSV export file that changes under it, and a local aiohttp service standing in for
an agency's legacy REST API; each also served by a real Adapter called as the hub calls it.
"""

from __future__ import annotations

import asyncio
import csv
import os
import sqlite3
from collections.abc import AsyncIterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import web

from adapters.config import AdapterConfig, read_config
from adapters.examples.legacy_rest import legacy_app, serving
from adapters.mapping import parse_fields
from adapters.server import RecordRequest, StoreUnavailable, UnknownSubject
from adapters.stores import build_store
from adapters.stores.flatfile import CsvStore
from adapters.stores.rest import RestStore
from adapters.stores.sql import SqlStore
from adapters.testing import stand_in_hub
from adapters.validation import InvalidParams
from broker.base.keyfiles import write_private_key
from broker.base.signing import generate_key, public_key_pem

ANNA, JAN = "85073003328", "90021512345"


def ask(subject: str, params: dict[str, Any] | None = None, category: str = "income") -> RecordRequest:
    return RecordRequest("x-1", "family-benefits", subject, category, "benefit-eligibility", params or {})


def write_register(path: Path) -> None:
    with closing(sqlite3.connect(path)) as connection, connection:
        connection.execute(
            "CREATE TABLE taxes (niss TEXT, tax_year INTEGER, income NUMERIC, class TEXT, filed DATE, secret TEXT)"
        )
        connection.executemany(
            "INSERT INTO taxes VALUES (?, ?, ?, ?, ?, ?)",
            [
                (ANNA, 2024, 39800, "joint", "2025-05-02", "not mapped"),
                (ANNA, 2025, 41250.5, "joint", "2026-04-30", "not mapped"),
                (JAN, 2025, 28900, "single", None, "not mapped"),
            ],
        )


FIELDS = parse_fields(
    {"taxable_income": "income", "year": "tax_year", "tax_class": "class", "filed": {"source": "filed"}}
)


@pytest.fixture
def register(tmp_path: Path) -> Path:
    path = tmp_path / "register.db"
    write_register(path)
    return path


@pytest.mark.parametrize("driver", ["sqlite+aiosqlite", "sqlite"])
async def test_sql_store_answers_from_a_table(register: Path, driver: str) -> None:
    store = SqlStore(f"{driver}:///{register}", FIELDS, table_name="taxes", key="niss", filters={"year": "tax_year"})
    await store.open()
    try:
        assert await store.fetch(ask(ANNA, {"year": 2025})) == {
            "taxable_income": 41250.5,
            "year": 2025,
            "tax_class": "joint",
            "filed": "2026-04-30",
        }
        assert (await store.fetch(ask(JAN)))["filed"] is None  # one record: no params needed
        with pytest.raises(InvalidParams, match="narrow the question"):
            await store.fetch(ask(ANNA))  # two years on file
        with pytest.raises(UnknownSubject):
            await store.fetch(ask("00000000000"))
        with pytest.raises(UnknownSubject):
            await store.fetch(ask(JAN, {"year": 1999}))
    finally:
        await store.close()


async def test_sql_store_answers_from_a_query_of_its_own(register: Path) -> None:
    query = "SELECT income * 1 AS income, tax_year, class, filed FROM taxes WHERE niss = :subject AND tax_year = :year"
    store = SqlStore(f"sqlite+aiosqlite:///{register}", FIELDS, query=query)
    await store.open()
    try:
        assert (await store.fetch(ask(ANNA, {"year": 2024})))["taxable_income"] == 39800
        with pytest.raises(InvalidParams, match="year"):
            await store.fetch(ask(ANNA))
    finally:
        await store.close()


async def test_sql_store_that_cannot_reach_its_database_is_unavailable(tmp_path: Path) -> None:
    store = SqlStore(f"sqlite:///{tmp_path / 'absent' / 'x.db'}", FIELDS, table_name="taxes", key="niss")
    await store.open()
    try:
        with pytest.raises(StoreUnavailable):
            await store.fetch(ask(ANNA))
    finally:
        await store.close()


def write_export(path: Path, rows: list[list[str]]) -> None:
    with path.open("w", newline="") as file:
        writer = csv.writer(file, delimiter=";")
        writer.writerow(["niss", "tax_year", "taxable_income", "tax_class"])
        writer.writerows(rows)


async def test_csv_store_reloads_when_the_export_changes(tmp_path: Path) -> None:
    export = tmp_path / "income.csv"
    await asyncio.to_thread(write_export, export, [[ANNA, "2025", "41250", "joint"]])
    fields = parse_fields({"taxable_income": {"source": "taxable_income", "type": "integer"}, "tax_class": "tax_class"})
    store = CsvStore(export, "niss", fields, delimiter=";", filters={"year": "tax_year"})
    await store.open()
    assert await store.fetch(ask(ANNA, {"year": 2025})) == {"taxable_income": 41250, "tax_class": "joint"}
    with pytest.raises(UnknownSubject):
        await store.fetch(ask(JAN))
    first = store.version
    assert first is not None

    rows = [[ANNA, "2025", "43000", "joint"], [JAN, "2025", "", "single"]]
    await asyncio.to_thread(write_export, export, rows)
    await asyncio.to_thread(os.utime, export, ns=(first[0] + 10**9, first[0] + 10**9))  # a coarse clock
    assert await store.fetch(ask(ANNA, {"year": 2025})) == {"taxable_income": 43000, "tax_class": "joint"}
    assert await store.fetch(ask(JAN)) == {"taxable_income": None, "tax_class": "single"}
    assert store.version != first

    # A broken export (its key column gone) is not taken: the last good one keeps answering.
    await asyncio.to_thread(export.write_text, "who;what\n1;2\n")
    assert await store.fetch(ask(JAN)) == {"taxable_income": None, "tax_class": "single"}
    await asyncio.to_thread(export.unlink)
    assert await store.fetch(ask(JAN)) == {"taxable_income": None, "tax_class": "single"}


@pytest.fixture
async def legacy() -> AsyncIterator[str]:
    records = {JAN: {"status": "job-seeker", "since": "2026-03-01", "contract": None}}
    async with serving(legacy_app(records)) as url:
        yield url


async def test_rest_store_maps_the_legacy_service_json(legacy: str) -> None:
    fields = parse_fields({"status": "situation.code", "since": "situation.since", "contract": "contract.type"})
    store = RestStore(legacy + "/api/v2/job-seekers/{subject}", fields)
    await store.open()
    try:
        assert await store.fetch(ask(JAN)) == {"status": "job-seeker", "since": "2026-03-01", "contract": None}
        with pytest.raises(UnknownSubject):
            await store.fetch(ask(ANNA))
        with pytest.raises(UnknownSubject):  # the subject is one path segment, whatever it holds
            await store.fetch(ask("../../x"))
    finally:
        await store.close()


async def test_rest_store_passes_params_and_reports_an_unreachable_service(legacy: str) -> None:
    seen: list[str] = []

    async def echo(request: web.Request) -> web.Response:
        seen.append(request.path_qs)
        return web.json_response({"record": {"year": int(request.match_info["year"])}})

    app = web.Application()
    app.router.add_get("/taxes/{niss}/{year}", echo)
    async with serving(app) as url:
        store = RestStore(url + "/taxes/{subject}/{year}", parse_fields({"year": "record.year"}), query={"x": "y"})
        await store.open()
        try:
            assert await store.fetch(ask(ANNA, {"year": 2025, "x": "a b"})) == {"year": 2025}
            with pytest.raises(InvalidParams):
                await store.fetch(ask(ANNA))
        finally:
            await store.close()
    assert seen == [f"/taxes/{ANNA}/2025?y=a+b"]
    store = RestStore(url + "/taxes/{subject}/{year}", parse_fields(["year"]))
    await store.open()
    try:
        with pytest.raises(StoreUnavailable):
            await store.fetch(ask(ANNA, {"year": 2025}))
    finally:
        await store.close()


def test_store_entries_are_checked_when_read(tmp_path: Path) -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        ({"store": "sql", "url": "sqlite://", "fields": ["a"]}, "either a table"),
        ({"store": "sql", "url": "sqlite://", "table": "t", "fields": ["a"]}, "key column"),
        ({"store": "sql", "url": "sqlite://", "query": "SELECT 1", "fields": ["a"]}, ":subject"),
        ({"store": "csv", "path": "x.csv", "fields": ["a"]}, "key is required"),
        ({"store": "http", "url": "http://x/{who}", "fields": ["a"]}, "{subject}"),
        ({"store": "http", "url": "http://x/{subject}", "fields": []}, "fields"),
        ({"store": "ftp", "fields": ["a"]}, "store must be one of"),
        ({"store": "csv", "path": "x.csv", "key": "k", "fields": {"a": {"type": "date"}}}, "type must be"),
    ]
    for spec, message in cases:
        with pytest.raises(ValueError, match=message):
            build_store("income", spec, tmp_path)


async def _three_stores_config(tmp_path: Path, legacy: str) -> AdapterConfig:
    """One agency answering three categories from three systems, configured in one YAML file."""
    await asyncio.to_thread(write_export, tmp_path / "income.csv", [[ANNA, "2025", "41250", "joint"]])
    await asyncio.to_thread(write_private_key, tmp_path / "agency.pem")
    await asyncio.to_thread((tmp_path / "hub.pub.pem").write_text, public_key_pem(generate_key().public_key()))
    config = {
        "agency": "social-desk",
        "key": {"id": "social-desk-1", "file": "agency.pem"},
        "hub": {"key_id": "crossroads-hub", "public_key_file": "hub.pub.pem"},
        "listen": {"port": 9999},
        "categories": {
            "tax-history": {
                "store": "sql",
                "url": "sqlite:///register.db",  # relative: taken from the config's folder
                "table": "taxes",
                "key": "niss",
                "filters": {"year": "tax_year"},
                "params": {"type": "object", "properties": {"year": {"type": "integer"}}, "required": ["year"]},
                "fields": {"year": "tax_year", "taxable_income": "income"},
            },
            "income": {
                "store": "csv",
                "path": "income.csv",
                "delimiter": ";",
                "key": "niss",
                "fields": {"taxable_income": {"source": "taxable_income", "type": "number"}},
            },
            "employment-status": {
                "store": "http",
                "url": legacy + "/api/v2/job-seekers/{subject}",
                "fields": {"status": "situation.code"},
            },
        },
    }
    path = tmp_path / "adapter.yaml"
    await asyncio.to_thread(path.write_text, yaml.safe_dump(config))
    return await asyncio.to_thread(read_config, path)


async def test_adapters_run_from_a_config_over_all_three_stores(tmp_path: Path, register: Path, legacy: str) -> None:
    """One agency answering three categories from three systems, configured in one YAML file."""
    async with stand_in_hub(await _three_stores_config(tmp_path, legacy)) as hub:
        assert await hub.records(ANNA, "tax-history", {"year": 2024}) == (
            200,
            {"data": {"year": 2024, "taxable_income": 39800}},
        )
        status, problem = await hub.records(ANNA, "tax-history", {"year": "2024"})
        assert (status, problem["type"]) == (422, "https://crossroads.example/problems/invalid")
        assert "'type'" in problem["detail"] and "2024" not in problem["detail"]
        assert await hub.records(ANNA, "income") == (200, {"data": {"taxable_income": 41250}})
        assert await hub.records(JAN, "employment-status") == (200, {"data": {"status": "job-seeker"}})
        status, problem = await hub.records(ANNA, "employment-status")
        assert (status, problem["type"]) == (404, "https://crossroads.example/problems/unknown-subject")
        status, problem = await hub.records(ANNA, "pension")
        assert (status, problem["type"]) == (404, "https://crossroads.example/problems/unknown-category")


async def _each_and_many(store: Any, requests: list[RecordRequest]) -> tuple[list[Any], list[Any]]:
    """What `fetch` answers each request (its record, or its exception's type) and what `fetch_many` answers."""
    each: list[Any] = []
    for request in requests:
        try:
            each.append(await store.fetch(request))
        except Exception as error:
            each.append(type(error))
    many = [answer if isinstance(answer, dict) else type(answer) for answer in await store.fetch_many(requests)]
    return each, many


@pytest.mark.parametrize("driver", ["sqlite+aiosqlite", "sqlite"])
async def test_sql_and_csv_stores_answer_a_chunk_as_they_answer_each_request(
    tmp_path: Path, register: Path, driver: str
) -> None:
    """Set-based look-ups (the subjects by the thousand, the requests grouped by the filters they ask) give each
    request exactly what a request alone gets: its record, unknown subject, or several records to narrow."""
    with closing(sqlite3.connect(register)) as connection, connection:  # past one query's share of subjects
        connection.executemany(
            "INSERT INTO taxes VALUES (?, 2025, ?, 'single', NULL, 'x')", [(f"7{n:010d}", n) for n in range(1200)]
        )
    questions = [(ANNA, {"year": 2025}), (JAN, {}), (ANNA, {}), ("00000000000", {}), (JAN, {"year": 1999})]
    questions += [(f"7{n:010d}", {"year": 2025} if n % 2 else {}) for n in range(0, 1200, 7)]
    requests = [ask(subject, params) for subject, params in questions]
    table = SqlStore(f"{driver}:///{register}", FIELDS, table_name="taxes", key="niss", filters={"year": "tax_year"})
    query = "SELECT income AS income, tax_year, class, filed FROM taxes WHERE niss = :subject AND tax_year = :year"
    own_query = SqlStore(f"{driver}:///{register}", FIELDS, query=query)
    export = tmp_path / "income.csv"
    await asyncio.to_thread(write_export, export, [[ANNA, "2025", "41250", "joint"], [ANNA, "2024", "1", "joint"]])
    csv_fields = parse_fields({"taxable_income": {"source": "taxable_income", "type": "integer"}})
    export_store = CsvStore(export, "niss", csv_fields, delimiter=";", filters={"year": "tax_year"})
    for store in (table, own_query, export_store):
        await store.open()
        try:
            each, many = await _each_and_many(store, requests)
            assert many == each
        finally:
            await store.close()
    assert each[:3] == [{"taxable_income": 41250}, UnknownSubject, InvalidParams]  # the CSV export's answers
    unreachable = SqlStore(f"sqlite:///{tmp_path / 'absent' / 'x.db'}", FIELDS, table_name="taxes", key="niss")
    await unreachable.open()
    try:
        assert [type(answer) for answer in await unreachable.fetch_many(requests[:3])] == [StoreUnavailable] * 3
    finally:
        await unreachable.close()


async def test_a_chunk_is_answered_line_by_line_as_single_requests_are(
    tmp_path: Path, register: Path, legacy: str
) -> None:
    """Through the adapter (`POST /v1/records/batch`, signed NDJSON both ways): a line for each line, in order,
    each answered as the same request alone is; a bad line fails alone."""
    config = await _three_stores_config(tmp_path, legacy)
    questions: list[tuple[str, str, dict[str, Any]]] = [
        (ANNA, "tax-history", {"year": 2024}),
        (JAN, "tax-history", {"year": 2025}),
        (ANNA, "tax-history", {"year": "2024"}),
        (ANNA, "tax-history", {}),
        ("00000000000", "tax-history", {"year": 2025}),
        (ANNA, "income", {}),
        (JAN, "employment-status", {}),
        (ANNA, "employment-status", {}),
        (ANNA, "pension", {}),
    ]
    async with stand_in_hub(config) as hub:
        alone = [await hub.records(subject, category, params) for subject, category, params in questions]
        lines: list[dict[str, Any] | bytes] = [
            {"exchange": f"x-{n}", "requester": "r", "subject": s, "category": c, "purpose": "p", "params": p}
            for n, (s, c, p) in enumerate(questions)
        ]
        lines += [b"not json", b'{"exchange": "x-missing"}', b"[1]"]
        status, answers = await hub.chunk(lines)
        assert status == 200 and len(answers) == len(lines)
        for n, ((single_status, single), answer) in enumerate(zip(alone, answers, strict=False)):
            assert (answer["exchange"], answer["status"]) == (f"x-{n}", single_status)
            assert answer.get("data", answer.get("problem")) == single.get("data", single)
        assert [(answer["exchange"], answer["status"]) for answer in answers[-3:]] == [
            (None, 400),
            (None, 422),
            (None, 422),
        ]
        problems = [answer["problem"]["type"].rsplit("/", 1)[1] for answer in answers[-3:]]
        assert problems == ["malformed", "invalid", "invalid"]
        status, refused = await hub.chunk([b"{}"] * 10_001)
        assert (status, refused[0]["type"]) == (413, "https://crossroads.example/problems/too-large")
