"""The adapter SDK trusts the hub's key alone, refuses replays, and answers signed and bound."""

from __future__ import annotations

import json

import aiohttp

from adapters.examples.demo_agencies import ANNA
from broker.demo import DemoWorld
from broker.signing import Request, Response, SigningKey, generate_key, sign_request, verify_response

RECORD = {
    "exchange": "x-1",
    "requester": "family-benefits",
    "subject": ANNA,
    "category": "civil-status",
    "purpose": "benefit-eligibility",
    "params": {},
}


async def _post(
    session: aiohttp.ClientSession,
    url: str,
    key: SigningKey,
    document: dict[str, object],
    headers: dict[str, str] | None = None,
) -> tuple[int, dict[str, object], dict[str, str], bytes]:
    body = json.dumps(document).encode()
    headers = headers or sign_request("POST", url, body, key)
    async with session.post(url, data=body, headers=headers) as answer:
        raw = await answer.read()
        return answer.status, json.loads(raw), dict(answer.headers), raw


async def test_adapter_answers_the_hub_signed_and_bound(
    sqlite_world: DemoWorld, session: aiohttp.ClientSession
) -> None:
    url = sqlite_world.adapter_urls["population-register"] + "/v1/records"
    body = json.dumps(RECORD).encode()
    headers = sign_request("POST", url, body, sqlite_world.hub.key)
    status, document, answer_headers, raw = await _post(session, url, sqlite_world.hub.key, RECORD, headers)
    assert status == 200 and document["data"]["name"] == "Anna Peeters"  # type: ignore[index]
    bound = Request("POST", url, {"Content-Digest": headers["Content-Digest"]})
    register = sqlite_world.keys["population-register"]
    covered = verify_response(Response(status, answer_headers, bound), raw, register.key_id, register.public_key)
    assert '"@target-uri";req' in covered
    replayed = await _post(session, url, sqlite_world.hub.key, RECORD, headers)
    assert (replayed[0], replayed[1]["type"]) == (409, "https://crossroads.example/problems/replay")


async def test_adapter_trusts_only_the_hub(sqlite_world: DemoWorld, session: aiohttp.ClientSession) -> None:
    url = sqlite_world.adapter_urls["population-register"] + "/v1/records"
    for key in (sqlite_world.keys["family-benefits"], SigningKey("crossroads-hub", generate_key())):
        status, document, _, _ = await _post(session, url, key, RECORD)
        assert status == 401, document


async def test_unknown_subject_at_the_adapter(sqlite_world: DemoWorld, session: aiohttp.ClientSession) -> None:
    url = sqlite_world.adapter_urls["population-register"] + "/v1/records"
    status, document, _, _ = await _post(session, url, sqlite_world.hub.key, {**RECORD, "subject": "00000000000"})
    assert (status, document["type"]) == (404, "https://crossroads.example/problems/unknown-subject")
