"""The hub's aiohttp application: routes, and the one middleware every call goes through.

The middleware reads the body within its limit, authenticates and authorises the caller, runs the
handler, turns any error into an RFC 9457 problem, commits the call's audit record, and signs the
answer. Nothing leaves before its audit record is committed; if the log cannot be written the answer
is a 503 problem instead.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import structlog
from aiohttp import web
from aiohttp.typedefs import Handler
from http_message_signatures.exceptions import HTTPMessageSignaturesException
from sqlalchemy.exc import SQLAlchemyError

from broker import errors, http, wire
from broker.appkeys import AUDIT, BODY, HUB, PRINCIPAL
from broker.audit import AuditEntry, digest, outcome_for
from broker.authentication import Principal
from broker.config import Config
from broker.console import app as console
from broker.hub import Hub, open_hub
from broker.signing import Request, sign_response
from broker.storage import StoreUnavailable

log = structlog.get_logger("crossroads.http")

# Operations endpoints answer anyone, unsigned and unaudited: they carry no subject's data.
OPEN_PATHS = frozenset({"/healthz", "/readyz", "/openapi.json", "/metrics"})
PROBLEM_JSON = "application/problem+json"
MAX_REQUEST_LINE = 8190  # bytes; aiohttp refuses a longer request line itself, before the app sees it
MAX_HEADER_LINES = 100


def kind_of(path: str) -> str:
    """The audit record kind of a call, from its path: `exchange`, `consent`, `policy`, `review`, ..."""
    parts = path.strip("/").split("/")
    if len(parts) >= 2 and parts[0] == "v1":
        return {
            "exchanges": "exchange",
            "consents": "consent",
            "refusals": "consent",
            "subjects": "subject",
            "policies": "policy",
            "reviews": "review",
            "audit": "audit",
            "notifications": "notification",
            "agencies": "key",
        }.get(parts[1], "http")
    return "http"


def problem_response(problem: errors.Problem, exchange: str | None) -> web.Response:
    document = problem.document()
    if exchange is not None:
        document["exchange"] = exchange
    response = web.json_response(document, status=problem.status, content_type=PROBLEM_JSON)
    response.headers.update(problem.headers)
    return response


@web.middleware
async def respond(request: web.Request, handler: Handler) -> web.StreamResponse:
    if console.serves(request.path):
        return await handler(request)  # browser sessions, not signed calls: the console's own middleware
    hub = request.app[HUB]
    if request.path in OPEN_PATHS and request.method in ("GET", "HEAD"):
        try:
            return sign(hub, await handler(request), bound=None)
        except errors.Problem as unready:
            return sign(hub, problem_response(unready, None), bound=None)
    started = time.perf_counter()
    entry = AuditEntry(at=datetime.now(UTC), kind=kind_of(request.path))
    bound = Request(request.method, hub.config.url + request.raw_path)
    try:
        wire.check_headers(request.raw_headers, hub.config.max_header_bytes)
        body = await read_body(request)
        entry.request_digest = digest(body)
        principal = await hub.authenticator.authenticate(request.method, request.raw_path, request.headers, body, entry)
        if "Content-Digest" in request.headers:
            bound = Request(bound.method, bound.url, {"Content-Digest": request.headers["Content-Digest"]})
        wire.check_target(request.raw_path, request.query)
        hub.authenticator.authorize(principal, request.path, request.method)
        throttle(hub, principal)
        request[PRINCIPAL], request[BODY], request[AUDIT] = principal, body, entry
        with occupying(hub, principal):
            response = await handler(request)
    except asyncio.CancelledError:
        await abandon(hub, entry, started)
        raise
    except Exception as error:
        problem = as_problem(error, entry)
        entry.reason = problem.name
        response = problem_response(problem, entry.exchange)
    assert isinstance(response, web.Response)
    finish(entry, response, started)
    try:
        await hub.audit.commit(entry)
    except StoreUnavailable:
        log.error("audit.unwritable", exchange=entry.exchange, kind=entry.kind)
        response = problem_response(errors.Unavailable("the audit log cannot be written"), entry.exchange)
    hub.metrics.answered(entry.kind, entry.outcome, entry.zone, entry.latency_ms, entry.holder, entry.holder_ms)
    log.info(
        f"{entry.kind}.answered",
        exchange=entry.exchange,
        requester=entry.requester,
        status=response.status,
        outcome=entry.outcome,
        reason=entry.reason,
        zone=entry.zone,
        latency_ms=entry.latency_ms,
        request_digest=entry.request_digest,
        response_digest=entry.response_digest,
    )
    return sign(hub, response, bound)


def as_problem(error: Exception, entry: AuditEntry) -> errors.Problem:
    """The problem a failed call answers with; unexpected errors are logged and answered without detail."""
    if isinstance(error, errors.Problem):
        return error
    if isinstance(error, web.HTTPNotFound):
        return errors.NotFound("no resource at this path")
    if isinstance(error, web.HTTPMethodNotAllowed):
        return errors.MethodNotAllowed("this method is not allowed on this resource")
    if isinstance(error, StoreUnavailable | SQLAlchemyError | OSError):
        log.error("store.unavailable", error=type(error).__name__, kind=entry.kind, exchange=entry.exchange)
        return errors.Unavailable("the hub's store cannot be reached")
    log.exception("internal.error", kind=entry.kind, exchange=entry.exchange)
    return errors.Problem("the hub could not complete this request")


async def read_body(request: web.Request) -> bytes:
    try:
        return await request.read()
    except web.HTTPRequestEntityTooLarge as error:
        raise errors.TooLarge(f"the body exceeds {request.app[HUB].config.max_body_bytes} bytes") from error


def throttle(hub: Hub, principal: Principal) -> None:
    wait = hub.limiter.take(principal.id, time.monotonic())
    if wait is not None:
        raise errors.RateLimited(
            f"{principal.id!r} exceeds {hub.limiter.rate:g} requests a second",
            headers={"Retry-After": str(max(1, round(wait + 0.5)))},
        )


@contextmanager
def occupying(hub: Hub, principal: Principal) -> Iterator[None]:
    """Hold one of the principal's in-flight slots while its request is handled; none left is a 429."""
    if not hub.concurrency.enter(principal.id):
        raise errors.RateLimited(
            f"{principal.id!r} already has {hub.concurrency.most} requests in the hub",
            headers={"Retry-After": "1"},
        )
    try:
        yield
    finally:
        hub.concurrency.leave(principal.id)


async def abandon(hub: Hub, entry: AuditEntry, started: float) -> None:
    """The requester disconnected and aiohttp cancelled its handler (with it any call to a holder): the attempt
    is recorded as abandoned, whatever step it had reached."""
    entry.status, entry.outcome, entry.reason = 499, "abandoned", "requester-gone"
    entry.latency_ms = round((time.perf_counter() - started) * 1000, 3)
    try:
        await asyncio.shield(hub.audit.commit(entry))
    except StoreUnavailable:
        log.error("audit.unwritable", exchange=entry.exchange, kind=entry.kind)
    log.info(f"{entry.kind}.abandoned", exchange=entry.exchange, requester=entry.requester, reason=entry.reason)


def finish(entry: AuditEntry, response: web.Response, started: float) -> None:
    entry.status = response.status
    entry.outcome = outcome_for(response.status)
    entry.response_digest = digest(_body(response))
    entry.latency_ms = round((time.perf_counter() - started) * 1000, 3)


def _body(response: web.Response) -> bytes:
    return response.body if isinstance(response.body, bytes) else b""


def sign(hub: Hub, response: web.StreamResponse, bound: Request | None) -> web.StreamResponse:
    """Sign the answer with the hub's key, bound to the request it answers where that can be expressed."""
    assert isinstance(response, web.Response)
    body = _body(response)
    headers = {"Content-Type": response.headers.get("Content-Type", response.content_type)}
    try:
        signed = sign_response(response.status, headers, body, hub.key, bound)
    except HTTPMessageSignaturesException:
        # A hostile request target may not be expressible in a signature base; sign the answer unbound.
        signed = sign_response(response.status, headers, body, hub.key, None)
    response.headers.update({name: value for name, value in signed.items() if name != "Content-Type"})
    return response


def server_settings(config: Config) -> dict[str, Any]:
    """How the aiohttp server in front of the app reads requests (for `web.run_app` or `web.AppRunner`).

    Its parser refuses, with its own plain-text 400 and before the app sees anything (so without an audit
    record), a request line over MAX_REQUEST_LINE bytes, a header line over twice the app's header limit or
    more than MAX_HEADER_LINES header lines; a header section between the app's limit and those the app
    answers itself (431 `headers-too-large`). A requester that disconnects cancels its handler.
    """
    return {
        "handler_cancellation": True,
        "max_line_size": MAX_REQUEST_LINE,
        "max_field_size": 2 * config.max_header_bytes,
        "max_headers": MAX_HEADER_LINES,
    }


def build_app(config: Config, hub: Hub | None = None) -> web.Application:
    """The hub application; with `hub` given the caller owns its lifetime (tests), else the app opens one."""
    app = web.Application(middlewares=[respond], client_max_size=config.max_body_bytes)
    http.add_routes(app)
    console.mount(app)
    if hub is not None:
        app[HUB] = hub
    else:

        async def lifetime(app: web.Application) -> AsyncIterator[None]:
            async with open_hub(config) as opened:
                app[HUB] = opened
                yield

        app.cleanup_ctx.append(lifetime)
    return app
