"""The exchange endpoint over HTTP against a real hub and real adapters: every status and problem type
in PROTOCOL.md's table, each from a real path, with its audit record and no other change of state.
"""

from __future__ import annotations

import asyncio
import json
from contextlib import AsyncExitStack
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from sqlalchemy import text

from adapters.client import HubProblem
from adapters.examples.demo_agencies import ANNA, JAN, PIETER, SOFIE
from adapters.server import RecordRequest
from broker.base.signing import Request, Response, SigningKey, generate_key, sign_request, verify_response
from broker.cli.demo import SCENARIO, DemoWorld, demo_world, free_port
from tests.agencies import add_holder, register, serve

WHITE = {"subject": ANNA, "category": "civil-status", "purpose": "benefit-eligibility"}


async def post(
    session: aiohttp.ClientSession,
    world: DemoWorld,
    body: bytes,
    headers: dict[str, str],
    path: str = "/v1/exchanges",
) -> tuple[int, dict[str, Any], dict[str, str], bytes]:
    async with session.post(world.hub_url + path, data=body, headers=headers) as answer:
        raw = await answer.read()
        return answer.status, json.loads(raw), dict(answer.headers), raw


def signed(
    world: DemoWorld,
    document: Any,
    principal: str = "family-benefits",
    path: str = "/v1/exchanges",
    key: SigningKey | None = None,
) -> tuple[bytes, dict[str, str]]:
    body = document if isinstance(document, bytes) else json.dumps(document).encode()
    return body, sign_request("POST", world.hub_url + path, body, key or world.keys[principal])


async def exchange_records(world: DemoWorld) -> list[Any]:
    return [record for record in await world.hub.audit.records() if record.kind == "exchange"]


async def test_scenario_answers_as_declared_with_one_audit_record_each(
    world: DemoWorld, session: aiohttp.ClientSession
) -> None:
    for case in SCENARIO:
        client = world.client(case.requester, session)
        try:
            result = await client.exchange(**case.request)
            status, zone, problem = result.status, result.zone, None
        except HubProblem as refused:
            status, zone, problem = refused.status, case.expect["zone"], refused.name
        assert (status, zone, problem) == (
            case.expect["status"],
            case.expect["zone"],
            case.expect["problem"],
        ), case
    records = await exchange_records(world)
    assert [record.status for record in records] == [case.expect["status"] for case in SCENARIO]
    assert all(record.outcome != "forwarding" and record.request_digest for record in records)


async def test_white_answer_is_minimised_signed_and_bound_to_its_request(
    world: DemoWorld, session: aiohttp.ClientSession
) -> None:
    body, headers = signed(world, {"subject": SOFIE, "category": "income", "purpose": "benefit-eligibility"})
    status, document, answer_headers, raw = await post(session, world, body, headers)
    assert status == 200
    assert document["data"] == {"taxable_income": 35400, "year": 2025}  # rule r-2 lists these fields only
    request = Request("POST", world.hub_url + "/v1/exchanges", {"Content-Digest": headers["Content-Digest"]})
    covered = verify_response(
        Response(status, answer_headers, request), raw, "crossroads-hub", world.hub.key.public_key
    )
    assert {'"@method";req', '"@target-uri";req', '"content-digest";req'} <= set(covered)
    [record] = await exchange_records(world)
    assert (record.outcome, record.holder, record.rule_id, record.policy_version) == (
        "delivered",
        "tax-authority",
        "r-2",
        1,
    )
    assert record.consent_id is not None and record.exchange == document["exchange"]


async def test_records_never_hold_payload(sqlite_world: DemoWorld, session: aiohttp.ClientSession) -> None:
    await sqlite_world.client("family-benefits", session).exchange(**WHITE)
    dump = json.dumps([vars(record) for record in await sqlite_world.hub.audit.records()], default=str)
    assert "Anna Peeters" not in dump and "Bondgenotenlaan" not in dump
    log = sqlite_world.state_dir / "hub.log"
    assert not log.exists() or "Anna Peeters" not in log.read_text()


@pytest.mark.parametrize(
    ("body", "content_type", "status", "problem"),
    [
        (b"{not json", "application/json", 400, "malformed"),
        (b"\xff\xfe", "application/json", 400, "malformed"),
        (json.dumps(WHITE).encode(), "text/plain", 415, "unsupported-media-type"),
        (json.dumps([WHITE]).encode(), "application/json", 422, "invalid"),
        (json.dumps({**WHITE, "extra": 1}).encode(), "application/json", 422, "invalid"),
        (json.dumps({**WHITE, "subject": "85 07"}).encode(), "application/json", 422, "invalid"),
        (json.dumps({**WHITE, "purpose": "curiosity"}).encode(), "application/json", 422, "unknown-purpose"),
        (
            json.dumps({**WHITE, "category": "shoe-size"}).encode(),
            "application/json",
            404,
            "unknown-category",
        ),
        (json.dumps({**WHITE, "params": [1]}).encode(), "application/json", 422, "invalid"),
    ],
)
async def test_bad_requests_get_problems_and_audit_records(
    sqlite_world: DemoWorld,
    session: aiohttp.ClientSession,
    body: bytes,
    content_type: str,
    status: int,
    problem: str,
) -> None:
    headers = sign_request(
        "POST",
        sqlite_world.hub_url + "/v1/exchanges",
        body,
        sqlite_world.keys["family-benefits"],
        content_type=content_type,
    )
    got, document, answer_headers, _ = await post(session, sqlite_world, body, headers)
    assert (got, document["type"]) == (status, f"https://crossroads.example/problems/{problem}")
    assert answer_headers["Content-Type"].startswith("application/problem+json")
    assert document["status"] == status and document["title"] and document["detail"]
    [record] = await exchange_records(sqlite_world)
    assert (record.status, record.reason, record.requester) == (status, problem, "family-benefits")
    assert await sqlite_world.hub.reviews.with_status("pending") == []


async def test_oversized_body_is_refused(sqlite_world: DemoWorld, session: aiohttp.ClientSession) -> None:
    body, headers = signed(sqlite_world, {**WHITE, "justification": "x" * 70_000})
    status, document, _, _ = await post(session, sqlite_world, body, headers)
    assert (status, document["type"].rsplit("/", 1)[1]) == (413, "too-large")
    [record] = await exchange_records(sqlite_world)
    assert record.reason == "too-large"


async def _refusal(
    world: DemoWorld, session: aiohttp.ClientSession, body: bytes, headers: dict[str, str]
) -> tuple[int, str]:
    status, document, _, _ = await post(session, world, body, headers)
    return status, document["type"].rsplit("/", 1)[1]


async def test_signature_problems(sqlite_world: DemoWorld, session: aiohttp.ClientSession) -> None:
    world = sqlite_world
    body, headers = signed(world, WHITE)
    unsigned = {"Content-Type": "application/json"}
    assert await _refusal(world, session, body, unsigned) == (401, "unsigned")
    changed = json.dumps({**WHITE, "subject": JAN}).encode()
    assert await _refusal(world, session, changed, headers) == (401, "bad-digest")
    forged = sign_request(
        "POST",
        world.hub_url + "/v1/exchanges",
        body,
        SigningKey(world.keys["family-benefits"].key_id, generate_key()),
    )
    assert await _refusal(world, session, body, forged) == (401, "bad-signature")
    wrong_target = sign_request("POST", world.hub_url + "/v1/consents", body, world.keys["family-benefits"])
    assert await _refusal(world, session, body, wrong_target) == (401, "bad-signature")
    stranger = sign_request("POST", world.hub_url + "/v1/exchanges", body, SigningKey("nobody", generate_key()))
    assert await _refusal(world, session, body, stranger) == (401, "unknown-key")
    assert {record.reason for record in await exchange_records(world)} == {
        "unsigned",
        "bad-digest",
        "bad-signature",
        "unknown-key",
    }


async def test_stale_and_future_signatures_are_refused(sqlite_world: DemoWorld, session: aiohttp.ClientSession) -> None:
    from broker.base import signing

    # A minute past the window either way: `created` is whole seconds, and a loaded machine may take seconds to
    # send the request.
    for shift in (-signing.CREATED_WINDOW_S - 60, signing.CREATED_WINDOW_S + 60):
        body = json.dumps(WHITE).encode()
        headers = {"Content-Type": "application/json", "Content-Digest": signing.content_digest(body)}
        message = Request("POST", sqlite_world.hub_url + "/v1/exchanges", headers)
        signer = signing.HTTPMessageSigner(
            signature_algorithm=signing.algorithms.ED25519,
            key_resolver=signing.MappingKeyResolver(
                public_keys={},
                private_keys={"family-benefits-2026": sqlite_world.keys["family-benefits"].private_key},
            ),
        )
        signer.sign(
            message,
            key_id="family-benefits-2026",
            nonce=f"n{shift}",
            label="sig1",
            covered_component_ids=signing.BODY_COMPONENTS,
            use_existing_digest=True,
            created=datetime.now(UTC) + timedelta(seconds=shift),
        )
        assert await _refusal(sqlite_world, session, body, headers) == (401, "stale-signature")


async def test_revoked_and_expired_keys_are_refused(sqlite_world: DemoWorld, session: aiohttp.ClientSession) -> None:
    world = sqlite_world
    now = datetime.now(UTC)
    from broker.base.signing import public_key_pem

    revoked, expired = SigningKey("fb-revoked", generate_key()), SigningKey("fb-expired", generate_key())
    await world.hub.directory.load(
        {
            "agencies": [
                {
                    "id": "family-benefits",
                    "name": "Family Benefits Agency",
                    "adapter_url": world.adapter_urls["family-benefits"],
                    "keys": [
                        {
                            "key_id": revoked.key_id,
                            "public_key_pem": public_key_pem(revoked.public_key),
                            "status": "revoked",
                        },
                        {
                            "key_id": expired.key_id,
                            "public_key_pem": public_key_pem(expired.public_key),
                            "valid_from": (now - timedelta(days=30)).isoformat(),
                            "valid_until": (now - timedelta(days=1)).isoformat(),
                        },
                    ],
                }
            ]
        },
        now,
    )
    for key in (revoked, expired):
        body, headers = signed(world, WHITE, key=key)
        assert await _refusal(world, session, body, headers) == (401, "unknown-key")


async def test_replay_is_refused(world: DemoWorld, session: aiohttp.ClientSession) -> None:
    body, headers = signed(world, WHITE)
    assert (await post(session, world, body, headers))[0] == 200
    assert await _refusal(world, session, body, headers) == (409, "replay")
    assert [record.status for record in await exchange_records(world)] == [200, 409]


async def test_copies_of_one_request_sent_at_once_change_state_once(
    world: DemoWorld, session: aiohttp.ClientSession
) -> None:
    """The exchange claims its nonce with its first write (the reservation, the refusal's record, or before a
    review is opened): of copies sent at once one goes on, the others are replays that wrote nothing else."""
    body, headers = signed(world, WHITE)
    statuses = [answer[0] for answer in await asyncio.gather(*(post(session, world, body, headers) for _ in range(6)))]
    assert sorted(statuses) == [200, 409, 409, 409, 409, 409]
    grey = {"subject": JAN, "category": "employment-status", "purpose": "benefit-eligibility"}
    body, headers = signed(world, grey)
    statuses = [answer[0] for answer in await asyncio.gather(*(post(session, world, body, headers) for _ in range(6)))]
    assert sorted(statuses) == [202, 409, 409, 409, 409, 409]
    assert len(await world.hub.reviews.with_status("pending")) == 1
    records = await exchange_records(world)
    assert sorted((record.status, record.reason) for record in records) == [
        (200, None),
        (202, None),
        *[(409, "replay")] * 10,
    ]


async def test_suspended_agency_is_refused(sqlite_world: DemoWorld, session: aiohttp.ClientSession) -> None:
    await sqlite_world.hub.directory.set_agency_status("family-benefits", "suspended")
    body, headers = signed(sqlite_world, WHITE)
    assert await _refusal(sqlite_world, session, body, headers) == (403, "suspended")


async def test_agencies_cannot_call_operator_endpoints(sqlite_world: DemoWorld, session: aiohttp.ClientSession) -> None:
    client = sqlite_world.client("family-benefits", session)
    with pytest.raises(HubProblem) as refused:
        await client.call("GET", "/v1/audit")
    assert (refused.value.status, refused.value.name) == (403, "forbidden")
    body, headers = signed(sqlite_world, WHITE, principal="privacy-office")
    assert await _refusal(sqlite_world, session, body, headers) == (403, "forbidden")


async def test_unknown_subject_at_the_holder(sqlite_world: DemoWorld, session: aiohttp.ClientSession) -> None:
    # The directory says the register holds Pieter's civil status, but the register has no record of him.
    await sqlite_world.hub.directory.load(
        {"holdings": [{"holder": "population-register", "category": "civil-status", "subjects": [PIETER]}]},
        datetime.now(UTC),
    )
    with pytest.raises(HubProblem) as refused:
        await sqlite_world.client("family-benefits", session).exchange(PIETER, "civil-status", "benefit-eligibility")
    assert (refused.value.status, refused.value.name) == (404, "unknown-subject")
    assert refused.value.exchange is not None


async def test_rate_limit_answers_429_with_retry_after(tmp_path: Any, session: aiohttp.ClientSession) -> None:
    async with demo_world(tmp_path / "state", rate_per_s=0.01, rate_burst=1) as world:
        body, headers = signed(world, WHITE)
        assert (await post(session, world, body, headers))[0] == 200
        body, headers = signed(world, WHITE)
        status, document, answer_headers, _ = await post(session, world, body, headers)
        assert (status, document["type"].rsplit("/", 1)[1]) == (429, "rate-limited")
        assert int(answer_headers["Retry-After"]) >= 1


async def test_holder_answering_unsigned_is_a_bad_gateway(
    sqlite_world: DemoWorld, session: aiohttp.ClientSession
) -> None:
    async def unsigned_answer(request: web.Request) -> web.Response:
        return web.json_response({"data": {"pension": 1}})

    app = web.Application()
    app.router.add_post("/v1/records", unsigned_answer)
    async with AsyncExitStack() as stack:
        port = free_port()
        await serve(stack, app, port)
        await register(sqlite_world, "rogue-fund", f"http://127.0.0.1:{port}", SigningKey("rogue", generate_key()))
        with pytest.raises(HubProblem) as refused:
            await sqlite_world.client("family-benefits", session).exchange(PIETER, "pension", "benefit-eligibility")
    assert (refused.value.status, refused.value.name) == (502, "bad-holder-answer")
    [record] = await exchange_records(sqlite_world)
    assert (record.outcome, record.reason, record.holder) == ("failed", "bad-holder-answer", "rogue-fund")


async def test_an_unreachable_holder_is_named_so(sqlite_world: DemoWorld, session: aiohttp.ClientSession) -> None:
    nobody_listens = f"http://127.0.0.1:{free_port()}"
    await register(sqlite_world, "rogue-fund", nobody_listens, SigningKey("rogue", generate_key()))
    with pytest.raises(HubProblem) as refused:
        await sqlite_world.client("family-benefits", session).exchange(PIETER, "pension", "benefit-eligibility")
    assert (refused.value.status, refused.value.name) == (502, "holder-unreachable")
    [record] = await exchange_records(sqlite_world)
    assert (record.outcome, record.reason, record.holder) == ("failed", "holder-unreachable", "rogue-fund")


async def test_holder_not_answering_in_time(tmp_path: Any, session: aiohttp.ClientSession) -> None:
    release = asyncio.Event()

    async def hung(request: RecordRequest) -> dict[str, Any]:
        await release.wait()
        return {}

    async with demo_world(tmp_path / "state", holder_timeout_s=0.2) as world, AsyncExitStack() as stack:
        await add_holder(world, stack, "pension-fund", hung)
        with pytest.raises(HubProblem) as refused:
            await world.client("family-benefits", session).exchange(PIETER, "pension", "benefit-eligibility")
        release.set()
    assert (refused.value.status, refused.value.name) == (504, "holder-timeout")


FAIL_AUDIT = {
    "sqlite": ["CREATE TRIGGER audit_full BEFORE INSERT ON audit_records BEGIN SELECT RAISE(ABORT, 'full'); END"],
    "postgresql": [
        "CREATE FUNCTION audit_full() RETURNS trigger AS $$ BEGIN RAISE EXCEPTION 'full'; END $$ LANGUAGE plpgsql",
        "CREATE TRIGGER audit_full BEFORE INSERT ON audit_records FOR EACH ROW EXECUTE FUNCTION audit_full()",
    ],
}


async def test_unwritable_audit_log_fails_closed(world: DemoWorld, session: aiohttp.ClientSession) -> None:
    asked: list[str] = []

    async def pension(request: RecordRequest) -> dict[str, Any]:
        asked.append(request.exchange)
        return {"monthly_pension": 1480}

    async with AsyncExitStack() as stack:
        await add_holder(world, stack, "pension-fund", pension)
        client = world.client("family-benefits", session)
        assert (await client.exchange(PIETER, "pension", "benefit-eligibility")).status == 200
        async with world.hub.engine.begin() as connection:
            for statement in FAIL_AUDIT[world.hub.engine.dialect.name]:
                await connection.execute(text(statement))
        with pytest.raises(HubProblem) as refused:
            await client.exchange(PIETER, "pension", "benefit-eligibility")
    assert (refused.value.status, refused.value.name) == (503, "unavailable")
    assert len(asked) == 1  # the second exchange never reached the holder


async def test_params_the_holder_refuses_are_the_requesters_error(
    sqlite_world: DemoWorld, session: aiohttp.ClientSession
) -> None:
    async def pension(request: RecordRequest) -> dict[str, Any]:
        return {"monthly_pension": 1480, "year": request.params["year"]}

    schema = {"type": "object", "properties": {"year": {"type": "integer"}}, "required": ["year"]}
    async with AsyncExitStack() as stack:
        await add_holder(sqlite_world, stack, "pension-fund", pension, params=schema)
        client = sqlite_world.client("family-benefits", session)
        assert (await client.exchange(PIETER, "pension", "benefit-eligibility", {"year": 2025})).status == 200
        with pytest.raises(HubProblem) as refused:
            await client.exchange(PIETER, "pension", "benefit-eligibility", {"year": "last"})
    assert (refused.value.status, refused.value.name) == (422, "invalid")
    assert refused.value.exchange is not None and "last" not in str(refused.value)
