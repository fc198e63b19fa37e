"""`POST /v1/directory/imports` and `GET /v1/directory/imports/{id}` end to end, with the agency SDK: a file
streamed and signed like any call, applied in the background, its progress and rejected lines readable by its
agency alone; a refused upload leaves nothing behind."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from adapters.problems import HubProblem
from broker.base.signing import sign_request
from broker.cli.demo import DemoWorld

NEWCOMER = "99010199001"
FROM = "2026-12-01T00:00:00Z"


async def _until_done(world: DemoWorld, session: aiohttp.ClientSession, agency: str, import_id: str) -> dict[str, Any]:
    """Wait, boundedly, for the import to finish; its status as the API answers it."""
    for _ in range(400):
        _, status = await world.client(agency, session).call("GET", f"/v1/directory/imports/{import_id}")
        if status["status"] == "done":
            return status
        await asyncio.sleep(0.05)
    raise AssertionError(f"import {import_id} did not finish")


def _file(path: Path, lines: list[dict[str, Any] | str]) -> Path:
    path.write_text("".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines))
    return path


async def test_an_agency_imports_its_references(
    world: DemoWorld, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    """Family benefits declares a new beneficiary and the population register holds their civil status: the
    exchange about them then gets past the hub's checks to the holder, which does not know them (404)."""
    benefits, register = world.client("family-benefits", session), world.client("population-register", session)
    with pytest.raises(HubProblem) as before:
        await benefits.exchange(NEWCOMER, "civil-status", "benefit-eligibility")
    assert before.value.name == "no-relationship"
    lines: list[dict[str, Any] | str] = [
        {"kind": "relationship", "subject": NEWCOMER, "capacity": "beneficiary", "from": FROM},
        "{broken",
        {"kind": "relationship", "subject": NEWCOMER, "capacity": "beneficiary", "from": FROM, "agency": "x"},
    ]
    accepted = await benefits.import_references(_file(tmp_path / "benefits.ndjson", lines))
    assert accepted["status"] in ("queued", "running", "done")
    status = await _until_done(world, session, "family-benefits", accepted["import"])
    assert (status["lines"], status["applied"], status["rejected"]) == (3, 1, 2)
    assert [error["line"] for error in status["errors"]] == [2, 3] and status["next"] is None
    holding = [{"kind": "holding", "subject": NEWCOMER, "category": "civil-status", "from": FROM}]
    held = await register.import_references(_file(tmp_path / "register.ndjson", holding))
    await _until_done(world, session, "population-register", held["import"])
    with pytest.raises(HubProblem) as after:
        await benefits.exchange(NEWCOMER, "civil-status", "benefit-eligibility")
    assert after.value.name == "unknown-subject"  # the hub let it through: only the holder does not know them
    records = await world.hub.audit.records(kind="directory")
    assert {record.exchange for record in records} >= {accepted["import"], held["import"]}


async def test_an_import_is_its_agencys_alone(world: DemoWorld, session: aiohttp.ClientSession, tmp_path: Path) -> None:
    line = {"kind": "relationship", "subject": NEWCOMER, "capacity": "taxpayer", "from": FROM}
    accepted = await world.client("tax-authority", session).import_references(_file(tmp_path / "a.ndjson", [line]))
    with pytest.raises(HubProblem) as refused:
        await world.client("family-benefits", session).call("GET", f"/v1/directory/imports/{accepted['import']}")
    assert refused.value.status == 404
    _, seen = await world.client("admin-desk", session).call("GET", f"/v1/directory/imports/{accepted['import']}")
    assert seen["agency"] == "tax-authority"


async def test_refused_uploads_leave_nothing_behind(world: DemoWorld, session: aiohttp.ClientSession) -> None:
    url = world.hub_url + "/v1/directory/imports"
    body = b'{"kind": "relationship", "subject": "1", "capacity": "taxpayer", "from": "2026-12-01T00:00:00Z"}\n'
    signed = sign_request("POST", url, body, world.keys["tax-authority"], "application/x-ndjson")
    tampered = {
        **signed,
        "Content-Digest": sign_request("POST", url, b"other", world.keys["tax-authority"])["Content-Digest"],
    }
    async with session.post(url, data=body, headers=tampered) as answer:
        assert answer.status == 401 and (await answer.json())["type"].endswith("/bad-signature")
    as_json = sign_request("POST", url, body, world.keys["tax-authority"])
    async with session.post(url, data=body, headers=as_json) as answer:
        assert answer.status == 415
    spool = world.hub.imports.spool_dir
    assert not spool.exists() or not list(spool.iterdir())
    records = await world.hub.audit.records(kind="directory")
    assert {record.status for record in records} >= {401, 415}
