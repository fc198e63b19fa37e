"""Two hub processes on one PostgreSQL behind one public URL (as a load balancer presents them) give the
same answers: a nonce used on one is refused on the other, a key revocation, a rule change and a consent
withdrawal made through one are obeyed by the other within seconds, and the audit log stays one chain."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
import pytest

from adapters.client import HubProblem
from adapters.examples.demo_agencies import ANNA, JAN
from broker.base.signing import Request, Response, public_key_pem, sign_request, verify_response
from broker.cli.demo import HUB_KEY_ID, DemoWorld, demo_world, free_port
from tests import postgres
from tests.processes import crossroads

pytestmark = pytest.mark.postgres
WHITE = {"subject": ANNA, "category": "civil-status", "purpose": "benefit-eligibility"}


async def _eventually(check: Callable[[], Awaitable[bool]]) -> bool:
    """Poll a bounded number of times: the other process follows the store within its poll interval."""
    for _ in range(50):
        if await check():
            return True
        await asyncio.sleep(0.1)
    return False


async def _refusal(call: Awaitable[object]) -> str | None:
    try:
        await call
    except HubProblem as problem:
        return problem.name
    return None


async def test_two_processes_answer_as_one(
    postgres_server: postgres.Server, tmp_path: Path, session: aiohttp.ClientSession
) -> None:
    url = await postgres_server.new_database()
    async with demo_world(tmp_path / "state", url) as world:
        port = free_port()
        address = f"http://127.0.0.1:{port}"
        async with crossroads(
            "serve",
            "--database-url",
            url,
            "--port",
            str(port),
            "--state-dir",
            str(world.state_dir),
            "--hub-key",
            str(world.hub.config.key_path),
            "--public-url",
            world.hub_url,
            answers=address + "/healthz",
            log=tmp_path / "second.log",
        ):
            await _check(world, session, address)


class Behind:
    """Calls the second process as a load balancer would pass them: signed for the public URL."""

    def __init__(self, world: DemoWorld, session: aiohttp.ClientSession, address: str) -> None:
        self.world, self.session, self.address = world, session, address

    async def call(self, principal: str, method: str, path: str, document: object | None = None) -> tuple[int, dict]:
        body = None if document is None else json.dumps(document).encode()
        public = self.world.hub_url + path
        headers = sign_request(method, public, body, self.world.keys[principal])
        async with self.session.request(method, self.address + path, data=body, headers=headers) as answer:
            raw, status, answer_headers = await answer.read(), answer.status, dict(answer.headers)
        bound = {} if body is None else {"Content-Digest": headers["Content-Digest"]}
        verify_response(
            Response(status, answer_headers, Request(method, public, bound)),
            raw,
            HUB_KEY_ID,
            self.world.hub.key.public_key,
        )
        return status, json.loads(raw)

    async def outcome(self, principal: str, document: dict[str, str]) -> str:
        """`delivered`, or the problem's name."""
        status, answer = await self.call(principal, "POST", "/v1/exchanges", document)
        return "delivered" if status == 200 else str(answer["type"]).rsplit("/", 1)[1]


async def _check(world: DemoWorld, session: aiohttp.ClientSession, address: str) -> None:
    second = Behind(world, session, address)
    assert await second.outcome("family-benefits", WHITE) == "delivered"

    # A request signed for the public URL and answered by the first process is a replay on the second.
    body = json.dumps(WHITE).encode()
    headers = sign_request("POST", world.hub_url + "/v1/exchanges", body, world.keys["family-benefits"])
    async with session.post(world.hub_url + "/v1/exchanges", data=body, headers=headers) as answer:
        assert answer.status == 200
    async with session.post(address + "/v1/exchanges", data=body, headers=headers) as answer:
        assert (answer.status, (await answer.json())["type"].rsplit("/", 1)[1]) == (409, "replay")

    # A rule removed through the first process is obeyed by the second.
    await world.client("admin-desk", session).call("DELETE", "/v1/policies/r-1", {"reason": "suspended for now"})

    async def rule_followed() -> bool:
        return await second.outcome("family-benefits", WHITE) == "black-zone"

    assert await _eventually(rule_followed)

    # A consent withdrawn through the first process: the very next exchange on the second is refused.
    income = {"subject": JAN, "category": "income", "purpose": "benefit-eligibility"}
    portal = world.client("citizen-portal", session)
    _, history = await portal.call("GET", f"/v1/subjects/{JAN}/consents")
    for refusal in history["refusals"]:
        await portal.call("POST", f"/v1/refusals/{refusal['refusal']}/lift")
    assert await second.outcome("family-benefits", income) == "delivered"
    for consent in history["consents"]:
        if consent["status"] == "active":
            await portal.call("POST", f"/v1/consents/{consent['consent']}/withdraw")
    assert await second.outcome("family-benefits", income) == "no-consent"

    # A key revoked in the store is refused by both processes.
    key = world.keys["family-benefits"]
    revoked = {"key_id": key.key_id, "public_key_pem": public_key_pem(key.public_key), "status": "revoked"}
    await world.hub.directory.load(
        {
            "agencies": [
                {
                    "id": "family-benefits",
                    "name": "Family Benefits Agency",
                    "adapter_url": world.adapter_urls["family-benefits"],
                    "keys": [revoked],
                }
            ]
        },
        datetime.now(UTC),
    )

    async def revoked_everywhere() -> bool:
        on_first = await _refusal(world.client("family-benefits", session).exchange(**income))
        return {on_first, await second.outcome("family-benefits", income)} == {"unknown-key"}

    assert await _eventually(revoked_everywhere)

    # Both processes wrote to one audit log, and it verifies as one chain.
    _, verdict = await second.call("privacy-office", "GET", "/v1/audit/verify")
    assert verdict["ok"] is True, verdict
