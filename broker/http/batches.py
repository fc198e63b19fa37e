"""Batches: `POST /v1/batches` takes an agency's NDJSON file of exchange requests (streamed to the spool folder by
the middleware, broker/http/uploads.py) and answers 202 at once; `GET /v1/batches/{id}` says how far it got;
`GET /v1/batches/{id}/results` gives its lines' answers as signed NDJSON, from `?after=` a line number (the answers
up to it are then forgotten: asking past them says they were read); `POST /v1/batches/{id}/cancel` stops it."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from aiohttp import web

from broker.appkeys import AUDIT, HUB, PRINCIPAL
from broker.base import errors
from broker.batches.lines import count_lines
from broker.batches.store import UNFINISHED, BatchJob
from broker.exchange.gates import seconds_to_next_day
from broker.http.replies import record_id, reply
from broker.http.uploads import NDJSON, ndjson_upload

RESULTS_PAGE = 5_000  # answers one page of results holds at most


async def submit(request: web.Request) -> web.Response:
    hub, principal, entry = request.app[HUB], request[PRINCIPAL], request[AUDIT]
    upload = ndjson_upload(request)
    lines = await asyncio.to_thread(count_lines, upload.path)
    if lines == 0:
        raise errors.Invalid("a batch needs a body: one exchange request a line")
    most = hub.config.max_batch_lines
    if lines > most:
        raise errors.TooLarge(f"a batch is at most {most} lines, not {lines}")
    at = datetime.now(UTC)
    day = at.replace(hour=0, minute=0, second=0, microsecond=0)
    used = await hub.batches.batches.lines_since(principal.id, day)
    quota = hub.config.batch_lines_per_day
    if used + lines > quota:
        raise errors.RateLimited(
            f"{principal.id!r} may submit {quota} batch lines a day (UTC); {used} were submitted today",
            headers={"Retry-After": str(seconds_to_next_day(at))},
        )
    digest = "sha-256:" + upload.digested.sha256.hex()
    job = await hub.batches.batches.create(
        principal.id, principal.key_id, digest, upload.digested.size, upload.path, lines, at
    )
    upload.kept = True
    entry.exchange = job.id
    hub.batches.start(job)
    return reply({"batch": job.id}, 202)


async def progress(request: web.Request) -> web.Response:
    return reply((await _batch(request)).as_json())


async def results(request: web.Request) -> web.Response:
    job = await _batch(request)
    after = request.query.get("after", "0")
    if set(request.query) - {"after"} or not after.isdigit() or len(after) > 18:
        raise errors.Invalid("the only query parameter is after, a line number")
    lines = await request.app[HUB].batches.batches.results(job.id, int(after), RESULTS_PAGE)
    return web.Response(body=b"".join(lines), content_type=NDJSON)


async def cancel(request: web.Request) -> web.Response:
    job = await _batch(request)
    if job.status not in UNFINISHED:
        raise errors.Conflict(f"batch {job.id!r} is {job.status}: only a queued or running batch is cancelled")
    cancelled = await request.app[HUB].batches.batches.cancel(job.id)
    return reply((cancelled or job).as_json())


async def _batch(request: web.Request) -> BatchJob:
    """The batch the path names, if the caller may see it: its own agency's, or any for an operator."""
    hub, principal = request.app[HUB], request[PRINCIPAL]
    batch_id = record_id(request, errors.NotFound)
    job = await hub.batches.batches.get(batch_id)
    if job is None or (principal.role == "agency" and job.requester != principal.id):
        raise errors.NotFound(f"no batch {batch_id!r} of yours")
    request[AUDIT].exchange = batch_id
    return job


ROUTES = [
    web.post("/v1/batches", submit),
    web.get("/v1/batches/{id}", progress),
    web.get("/v1/batches/{id}/results", results),
    web.post("/v1/batches/{id}/cancel", cancel),
]
