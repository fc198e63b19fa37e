"""HubClient: a typed exception for every problem the hub answers with (driven for real through the demo
world wherever a correctly signing client can meet it), grey-zone reviews, answers bound to their
request, and retries of only what is safe to retry, each re-signed with a fresh nonce.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from sqlalchemy import text

from adapters import problems
from adapters.client import HubClient, RetryPolicy, UnverifiedAnswer, repeatable, retry_wait
from adapters.examples.demo_agencies import ANNA, JAN, PIETER, SOFIE
from adapters.examples.legacy_rest import serving
from adapters.problems import BY_NAME, HubProblem, PendingReview, problem_for
from adapters.server import RecordRequest
from broker.base import errors
from broker.base.signing import Request, SigningKey, generate_key, read_signature_input, sign_response
from broker.cli.demo import SCENARIO, DemoWorld, demo_world, free_port
from tests.agencies import add_holder

WHITE: dict[str, Any] = {"subject": ANNA, "category": "civil-status", "purpose": "benefit-eligibility"}
GREY: dict[str, Any] = {"subject": JAN, "category": "employment-status", "purpose": "benefit-eligibility"}
FAST = RetryPolicy(attempts=3, backoff_s=0.01, max_wait_s=5)


def test_every_problem_the_hub_answers_with_has_its_class() -> None:
    for problem in errors.ALL:
        raised = problem_for(problem.status, {**problem("detail").document(), "exchange": "x-1"})
        assert type(raised) is BY_NAME[problem.name] and type(raised) is not HubProblem, problem.name
        assert (raised.status, raised.name, raised.exchange, raised.detail) == (
            problem.status,
            problem.name,
            "x-1",
            "detail",
        )
    assert set(BY_NAME) == {problem.name for problem in errors.ALL}
    unknown = problem_for(418, {"type": "https://crossroads.example/problems/teapot", "status": 418})
    assert type(unknown) is HubProblem and unknown.name == "teapot"


async def refusal(call: Awaitable[Any]) -> HubProblem:
    with pytest.raises(HubProblem) as refused:
        await call
    return refused.value


async def test_real_refusals_raise_their_classes(sqlite_world: DemoWorld, session: aiohttp.ClientSession) -> None:
    world = sqlite_world
    agency, portal = world.client("family-benefits", session), world.client("citizen-portal", session)
    cases: list[tuple[type[HubProblem], Callable[[], Awaitable[Any]]]] = [
        (problems.BlackZone, lambda: agency.exchange(ANNA, "health-record", "benefit-eligibility")),
        (problems.NoConsent, lambda: agency.exchange(ANNA, "income", "benefit-eligibility")),
        (
            problems.NoRelationship,
            lambda: world.client("municipality-leuven", session).exchange(JAN, "civil-status", "benefit-eligibility"),
        ),
        (problems.NoHolder, lambda: agency.exchange(PIETER, "pension", "benefit-eligibility")),
        (problems.UnknownCategory, lambda: agency.exchange(ANNA, "shoe-size", "benefit-eligibility")),
        (problems.UnknownPurpose, lambda: agency.exchange(ANNA, "civil-status", "curiosity")),
        (problems.Invalid, lambda: agency.exchange("85 07", "civil-status", "benefit-eligibility")),
        (problems.UnknownReview, lambda: agency.exchange(**GREY, review="no-such-review")),
        (problems.TooLarge, lambda: agency.exchange(**WHITE, justification="x" * 70_000)),
        (problems.Forbidden, lambda: agency.call("GET", "/v1/audit")),
        (problems.UnknownConsent, lambda: portal.call("POST", "/v1/consents/no-such-consent/withdraw")),
        (
            problems.UnknownKey,
            lambda: HubClient(
                world.hub_url, SigningKey("nobody", generate_key()), "crossroads-hub", world.hub.key.public_key, session
            ).exchange(**WHITE),
        ),
    ]
    for expected, call in cases:
        raised = await refusal(call())
        assert type(raised) is expected, raised
    for case in SCENARIO:  # whatever refusals the demo's scenario shows, each raises its own class
        if case.expect["problem"] is not None:
            request = world.client(case.requester, session).call("POST", "/v1/exchanges", case.request)
            assert type(await refusal(request)) is BY_NAME[case.expect["problem"]], case.name

    await world.hub.directory.load(  # the directory says the register holds Pieter's record; it does not
        {"holdings": [{"holder": "population-register", "category": "civil-status", "subjects": [PIETER]}]},
        datetime.now(UTC),
    )
    raised = await refusal(agency.exchange(PIETER, "civil-status", "benefit-eligibility"))
    assert type(raised) is problems.UnknownSubject and raised.exchange is not None
    # A holder refusing the params (the tax export's adapter wants an integer year): the requester's error.
    raised = await refusal(agency.exchange(SOFIE, "income", "benefit-eligibility", {"year": "last"}))
    assert type(raised) is problems.Invalid and raised.exchange is not None
    await world.hub.directory.set_agency_status("family-benefits", "suspended")
    assert type(await refusal(agency.exchange(**WHITE))) is problems.Suspended


async def test_grey_zone_reviews(sqlite_world: DemoWorld, session: aiohttp.ClientSession) -> None:
    agency, officer = sqlite_world.client("family-benefits", session), sqlite_world.client("privacy-office", session)
    pending = await agency.exchange(**GREY)
    assert pending.pending and pending.review is not None and pending.data is None
    with pytest.raises(PendingReview) as raised:
        await agency.exchange(**GREY, raise_pending=True)
    assert raised.value.status == 202 and raised.value.review
    assert (await agency.repeat_with_review(pending)).pending  # not decided yet: still waiting
    await officer.call("POST", f"/v1/reviews/{pending.review}/decision", {"decision": "approve", "reason": "file 12"})
    delivered = await agency.repeat_with_review(pending)
    assert (delivered.status, delivered.zone, delivered.data) == (
        200,
        "grey",
        {"status": "job-seeker", "since": "2026-03-01", "contract": None},
    )
    assert type(await refusal(agency.repeat_with_review(pending))) is problems.ReviewUsed
    rejected = raised.value.review
    await officer.call("POST", f"/v1/reviews/{rejected}/decision", {"decision": "reject", "reason": "no file"})
    assert type(await refusal(agency.exchange(**GREY, review=rejected))) is problems.ReviewRejected
    with pytest.raises(ValueError):
        await agency.repeat_with_review(delivered)


async def test_rate_limit_is_waited_out_and_repeated_with_a_fresh_nonce(
    tmp_path: Path, session: aiohttp.ClientSession
) -> None:
    async with demo_world(tmp_path / "state", rate_per_s=0.5, rate_burst=1) as world:
        impatient = HubClient(
            world.hub_url,
            world.keys["family-benefits"],
            "crossroads-hub",
            world.hub.key.public_key,
            session,
            RetryPolicy(max_wait_s=0),
        )
        assert (await impatient.exchange(**WHITE)).status == 200
        raised = await refusal(impatient.exchange(**WHITE))
        assert type(raised) is problems.RateLimited and raised.retry_after is not None and raised.retry_after >= 1
        patient = world.client("family-benefits", session)
        assert (await patient.exchange(**WHITE)).status == 200
        statuses = [record.status for record in await world.hub.audit.records() if record.kind == "exchange"]
    assert statuses[-2:] == [429, 200]  # waited, re-signed (a replayed nonce would be a 409), delivered


FAIL_AUDIT = "CREATE TRIGGER audit_full BEFORE INSERT ON audit_records BEGIN SELECT RAISE(ABORT, 'full'); END"


async def test_hub_failures(tmp_path: Path, session: aiohttp.ClientSession) -> None:
    asked: list[str] = []
    release = asyncio.Event()

    async def hung(request: RecordRequest) -> dict[str, Any]:
        asked.append(request.exchange)
        await release.wait()
        return {}

    async with demo_world(tmp_path / "state", holder_timeout_s=0.2) as world, AsyncExitStack() as stack:
        await add_holder(world, stack, "pension-fund", hung)
        client = HubClient(
            world.hub_url, world.keys["family-benefits"], "crossroads-hub", world.hub.key.public_key, session, FAST
        )
        raised = await refusal(client.exchange(PIETER, "pension", "benefit-eligibility"))
        assert type(raised) is problems.HolderTimeout and len(asked) == 1  # a 504 is not repeated
        release.set()
        async with world.hub.engine.begin() as connection:
            await connection.execute(text(FAIL_AUDIT))
        assert type(await refusal(client.exchange(**WHITE))) is problems.Unavailable


class StandInHub:
    """Answers each call with the next scripted status, signed and bound as the hub does; records the
    nonces it was sent. Stands in for the hub where the real one cannot be made to fail on cue."""

    def __init__(self, key: SigningKey, script: list[tuple[int, dict[str, str]]], bind: bool = True) -> None:
        self.key, self.script, self.bind = key, list(script), bind
        self.nonces: list[str] = []
        self.url = ""

    async def answer(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.nonces.append(read_signature_input(request.headers).nonce or "")
        status, headers = self.script.pop(0)
        document: dict[str, Any] = (
            {"exchange": "x-1", "zone": "white", "holder": "h", "data": {}}
            if status < 400
            else {"type": f"{errors.PROBLEM_BASE}{_name(status)}", "status": status, "detail": "scripted"}
        )
        raw = json.dumps(document).encode()
        bound = Request(
            request.method,
            self.url + request.raw_path,
            {"Content-Digest": request.headers["Content-Digest"]} if body else {},
        )
        signed = sign_response(
            status, {"Content-Type": "application/json"}, raw, self.key, bound if self.bind else None
        )
        return web.Response(status=status, body=raw, headers={**signed, **headers})


def _name(status: int) -> str:
    return {503: "unavailable", 429: "rate-limited", 403: "black-zone", 502: "bad-holder-answer"}[status]


async def scripted(
    session: aiohttp.ClientSession, script: list[tuple[int, dict[str, str]]], bind: bool = True
) -> AsyncIterator[tuple[StandInHub, HubClient]]:
    hub_key = SigningKey("crossroads-hub", generate_key())
    hub = StandInHub(hub_key, script, bind)
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", hub.answer)
    async with serving(app) as url:
        hub.url = url
        yield (
            hub,
            HubClient(
                url,
                SigningKey("family-benefits-2026", generate_key()),
                "crossroads-hub",
                hub_key.public_key,
                session,
                FAST,
            ),
        )


async def run_script(
    session: aiohttp.ClientSession,
    script: list[tuple[int, dict[str, str]]],
    call: Callable[[HubClient], Awaitable[Any]],
    bind: bool = True,
) -> tuple[Any, list[str]]:
    async for hub, client in scripted(session, script, bind):
        try:
            return await call(client), hub.nonces
        except (HubProblem, UnverifiedAnswer) as raised:
            return raised, hub.nonces
    raise AssertionError("unreachable")


async def test_retries_only_what_is_safe(session: aiohttp.ClientSession) -> None:
    exchange: Callable[[HubClient], Awaitable[Any]] = lambda client: client.exchange(**WHITE)  # noqa: E731
    result, nonces = await run_script(session, [(503, {}), (503, {}), (200, {})], exchange)
    assert result.status == 200 and len(set(nonces)) == 3  # each repeat re-signed with a fresh nonce
    result, nonces = await run_script(session, [(503, {})] * 3, exchange)
    assert type(result) is problems.Unavailable and len(nonces) == 3  # attempts are bounded
    result, nonces = await run_script(session, [(429, {"Retry-After": "0"}), (200, {})], exchange)
    assert result.status == 200 and len(set(nonces)) == 2
    result, nonces = await run_script(session, [(429, {"Retry-After": "60"})], exchange)
    assert type(result) is problems.RateLimited and result.retry_after == 60 and len(nonces) == 1
    for decision in (403, 502):  # decisions and a holder's bad answer are never repeated
        result, nonces = await run_script(session, [(decision, {})], exchange)
        assert isinstance(result, HubProblem) and result.status == decision and len(nonces) == 1
    consent: Callable[[HubClient], Awaitable[Any]] = lambda client: client.call("POST", "/v1/consents", {})  # noqa: E731
    result, nonces = await run_script(session, [(503, {})], consent)
    assert type(result) is problems.Unavailable and len(nonces) == 1  # may have been stored: not repeated


async def test_an_answer_not_bound_to_the_request_is_refused(session: aiohttp.ClientSession) -> None:
    result, _ = await run_script(session, [(200, {})], lambda client: client.exchange(**WHITE), bind=False)
    assert isinstance(result, UnverifiedAnswer) and '"@method";req' in str(result)


async def test_an_unreachable_hub_is_tried_again_then_reported(session: aiohttp.ClientSession) -> None:
    client = HubClient(
        f"http://127.0.0.1:{free_port()}",
        SigningKey("k", generate_key()),
        "crossroads-hub",
        generate_key().public_key(),
        session,
        FAST,
    )
    with pytest.raises(aiohttp.ClientConnectorError):
        await client.exchange(**WHITE)


def test_retry_decisions() -> None:
    policy = RetryPolicy(attempts=3, backoff_s=0.5, max_wait_s=10)

    def problem(status: int, name: str, retry_after: str | None = None) -> HubProblem:
        headers = {} if retry_after is None else {"Retry-After": retry_after}
        return problem_for(status, {"type": errors.PROBLEM_BASE + name}, headers)

    assert retry_wait(policy, 1, "POST", "/v1/exchanges", problem(503, "unavailable")) == 0.5
    assert retry_wait(policy, 2, "GET", "/v1/audit?x=1", problem(503, "unavailable")) == 1.0
    assert retry_wait(policy, 3, "POST", "/v1/exchanges", problem(503, "unavailable")) is None
    assert retry_wait(policy, 1, "POST", "/v1/policies", problem(503, "unavailable")) is None
    assert retry_wait(policy, 1, "POST", "/v1/consents", problem(429, "rate-limited", "2")) == 2
    assert retry_wait(policy, 1, "POST", "/v1/exchanges", problem(429, "rate-limited", "11")) is None
    assert retry_wait(policy, 1, "POST", "/v1/exchanges", problem(429, "emergency-limit", "1")) is None
    assert retry_wait(policy, 1, "POST", "/v1/exchanges", problem(504, "holder-timeout")) is None
    assert repeatable("GET", "/v1/reviews") and not repeatable("POST", "/v1/reviews/r/decision")
    dated = problem(429, "rate-limited", "Wed, 21 Oct 2015 07:28:00 GMT")
    assert dated.retry_after == 0.0
