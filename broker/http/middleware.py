"""The API's one middleware, which every signed call goes through, and the answer to the requests the HTTP
parser refuses before any middleware sees them.

It turns away, unread, a peer address that made too many requests refused before authentication; then it
reads the body within its limit, authenticates and authorises the caller and runs the handler, as an audited
call (broker/audit/call.py): any error becomes an RFC 9457 problem, and nothing leaves before the call's audit
record is committed (if the log cannot be written the answer is a 503 problem instead). Then it signs the answer.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from datetime import UTC, datetime

import structlog
from aiohttp import web
from aiohttp.typedefs import Handler
from http_message_signatures.exceptions import HTTPMessageSignaturesException

from broker.appkeys import AUDIT, BODY, HUB, PRINCIPAL
from broker.audit.call import audited
from broker.audit.log import AuditEntry, digest, outcome_for
from broker.base import errors, wire
from broker.base.signing import Digested, Request, sign_response
from broker.exchange.authentication import Principal
from broker.exchange.limits import Lockout
from broker.http.uploads import UPLOAD, receiving, takes_upload
from broker.hub import Hub

log = structlog.get_logger("crossroads.http")

# Operations endpoints answer anyone, unsigned and unaudited: they carry no subject's data.
OPEN_PATHS = frozenset({"/healthz", "/readyz", "/openapi.json", "/metrics"})
# The exchange path: one read and one write a request. Its handler follows the directory's version with its one
# read (broker/exchange/pipeline.py), and claims the request's nonce with its first write (the record it reserves
# before forwarding, the refusal's record, or before it opens a review). Every other call follows the directory
# as it is authenticated and claims its nonce at once, before its handler can change anything.
EXCHANGE_PATH = frozenset({("POST", "/v1/exchanges")})
PROBLEM_JSON = "application/problem+json"


def kind_of(path: str) -> str:
    """The audit record kind of a call, from its path: `exchange`, `consent`, `policy`, `review`, ..."""
    parts = path.strip("/").split("/")
    if len(parts) >= 4 and parts[:2] == ["v1", "agencies"] and parts[3] == "keys":
        return "key"
    if len(parts) >= 4 and parts[:2] == ["v1", "subjects"] and parts[3] in ("holders", "relationships"):
        return "directory"
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
            "agencies": "registry",
            "categories": "registry",
            "purposes": "registry",
            "capacities": "registry",
            "directory": "directory",
            "batches": "batch",
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
    hub = request.app[HUB]
    if request.path in OPEN_PATHS and request.method in ("GET", "HEAD"):
        try:
            return sign(hub, await handler(request), bound=None)
        except errors.Problem as unready:
            return sign(hub, problem_response(unready, None), bound=None)
    entry = AuditEntry(at=datetime.now(UTC), kind=kind_of(request.path))
    bound = Request(request.method, hub.config.url + request.raw_path)
    peer = hub.peers.peer(request.remote, ",".join(request.headers.getall("X-Forwarded-For", ())))
    lockout = hub.peers.lockout(peer, time.monotonic())
    if lockout is not None:
        hub.metrics.turned_away.inc()
        if not lockout.first:  # the first refusal of a run is audited below; the others are only counted
            return sign(hub, problem_response(too_many_failures(lockout), None), bound)
    authenticated = False

    async def call() -> web.Response:
        nonlocal bound, authenticated
        if lockout is not None:
            raise too_many_failures(lockout)
        wire.check_headers(request.raw_headers, hub.config.max_header_bytes)
        async with body_of(request, hub) as body:
            entry.request_digest = digest(body) if isinstance(body, bytes) else "sha-256:" + body.sha256.hex()
            exchange_path = (request.method, request.path) in EXCHANGE_PATH
            principal = await hub.authenticator.authenticate(
                request.method, request.raw_path, request.headers, body, entry, follow=not exchange_path
            )
            if not exchange_path:
                await hub.audit.claim(entry)
            authenticated = True
            if "Content-Digest" in request.headers:
                bound = Request(bound.method, bound.url, {"Content-Digest": request.headers["Content-Digest"]})
            wire.check_target(request.raw_path, request.query)
            hub.authenticator.authorize(principal, request.path, request.method)
            throttle(hub, principal)
            held = body if isinstance(body, bytes) else b""  # an upload is the handler's as request[UPLOAD]
            request[PRINCIPAL], request[BODY], request[AUDIT] = principal, held, entry
            with occupying(hub, principal):
                return whole(await handler(request))

    response = await audited(hub.audit, entry, call, lambda problem: problem_response(problem, entry.exchange), settle)
    if lockout is None and (not authenticated or entry.reason == errors.Replay.name) and 400 <= response.status < 500:
        hub.peers.refused(peer, time.monotonic())
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


async def refuse_unparseable(hub: Hub, remote: str | None, error: BaseException) -> web.StreamResponse:
    """The answer to a request aiohttp's HTTP parser refused, before any middleware could see it: a problem that
    names the parser's error but never echoes the bytes, and a count in /metrics; like any refusal before
    authentication it draws from the peer's allowance, and unless the peer is turned away (then only the first of
    the run is) it is audited (kind `http`) and logged in one line."""
    name = type(error).__name__
    hub.metrics.unparseable.labels(name).inc()
    problem = errors.UnparseableRequest(f"the request is not valid HTTP/1.1 ({name})")
    peer = hub.peers.peer(remote, "")
    lockout = hub.peers.lockout(peer, time.monotonic())
    if lockout is not None and not lockout.first:
        response = problem_response(problem, None)
    else:

        async def refuse() -> web.Response:
            raise problem

        entry = AuditEntry(at=datetime.now(UTC), kind="http")
        response = await audited(hub.audit, entry, refuse, lambda shown: problem_response(shown, None), settle)
        log.info("http.unparseable", peer=peer, error=name, response_digest=entry.response_digest)
    if lockout is None:
        hub.peers.refused(peer, time.monotonic())
    response.force_close()  # the parser cannot find where the next request would start
    return sign(hub, response, None)


def too_many_failures(lockout: Lockout) -> errors.Problem:
    wait = retry_after(lockout.wait)
    return errors.TooManyFailures(
        f"too many requests from this address were refused before authentication; try again in {wait} s",
        headers={"Retry-After": wait},
    )


def retry_after(wait: float) -> str:
    """A Retry-After value: whole seconds, at least 1."""
    return str(max(1, round(wait + 0.5)))


def settle(entry: AuditEntry, response: web.Response) -> None:
    entry.status = response.status
    entry.outcome = outcome_for(response.status)
    entry.response_digest = digest(_body(response))


@asynccontextmanager
async def body_of(request: web.Request, hub: Hub) -> AsyncIterator[bytes | Digested]:
    """The request's body: read within the body limit, or for a bulk import or a batch streamed to its spool folder
    (the handler finds the file as `request[UPLOAD]`)."""
    if not takes_upload(request):
        yield await read_body(request)
        return
    if request.path == "/v1/batches":
        folder, limit = hub.batches.spool_dir, hub.config.max_batch_bytes
    else:
        folder, limit = hub.imports.spool_dir, hub.config.max_import_bytes
    async with receiving(request, folder, limit) as upload:
        request[UPLOAD] = upload
        yield upload.digested


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
            headers={"Retry-After": retry_after(wait)},
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


def whole(response: web.StreamResponse) -> web.Response:
    """Every answer of the API is a whole body, which its record's digest and its signature cover."""
    if not isinstance(response, web.Response):
        raise TypeError(f"the API answers whole bodies, not a {type(response).__name__}")
    return response


def _body(response: web.Response) -> bytes:
    return response.body if isinstance(response.body, bytes) else b""


def sign(hub: Hub, response: web.StreamResponse, bound: Request | None) -> web.StreamResponse:
    """Sign the answer with the hub's key, bound to the request it answers where that can be expressed."""
    response = whole(response)
    body = _body(response)
    headers = {"Content-Type": response.headers.get("Content-Type", response.content_type)}
    try:
        signed = sign_response(response.status, headers, body, hub.key, bound)
    except HTTPMessageSignaturesException:
        # A hostile request target may not be expressible in a signature base; sign the answer unbound.
        signed = sign_response(response.status, headers, body, hub.key, None)
    response.headers.update({name: value for name, value in signed.items() if name != "Content-Type"})
    return response
