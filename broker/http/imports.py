"""Bulk imports of references: `POST /v1/directory/imports` takes an agency's NDJSON file (streamed to the spool
folder by the middleware, broker/http/uploads.py) and answers at once; `GET /v1/directory/imports/{id}` says how
far it got and which lines it rejected, and why."""

from __future__ import annotations

from aiohttp import web

from broker.appkeys import AUDIT, HUB, PRINCIPAL
from broker.base import errors
from broker.http.replies import record_id, reply
from broker.http.uploads import ndjson_upload

MAX_ERRORS = 1000  # rejected lines one answer lists; `?after=` pages through the rest


async def start_import(request: web.Request) -> web.Response:
    hub, principal, entry = request.app[HUB], request[PRINCIPAL], request[AUDIT]
    upload = ndjson_upload(request)
    if not upload.digested:
        raise errors.Invalid("an import needs a body: one reference a line")
    digest = "sha-256:" + upload.digested.sha256.hex()
    job = await hub.imports.imports.create(principal.id, principal.id, digest, upload.digested.size, upload.path)
    upload.kept = True
    entry.exchange = job.id
    hub.imports.start(job)
    return reply({"import": job.id, "status": job.status}, 202)


async def import_status(request: web.Request) -> web.Response:
    hub, principal = request.app[HUB], request[PRINCIPAL]
    import_id = record_id(request, errors.NotFound)
    job = await hub.imports.imports.get(import_id)
    if job is None or (principal.role == "agency" and job.agency != principal.id):
        raise errors.NotFound(f"no import {import_id!r} of yours")
    request[AUDIT].exchange = import_id
    after = request.query.get("after", "0")
    if set(request.query) - {"after"} or not after.isdigit() or len(after) > 18:
        raise errors.Invalid("the only query parameter is after, a line number")
    rejected = await hub.imports.imports.rejections(job.id, int(after), MAX_ERRORS + 1)
    listed = rejected[:MAX_ERRORS]
    return reply(
        {
            **job.as_json(),
            "errors": [{"line": line, "detail": detail} for line, detail in listed],
            "next": listed[-1][0] if len(rejected) > MAX_ERRORS else None,
        }
    )


ROUTES = [
    web.post("/v1/directory/imports", start_import),
    web.get("/v1/directory/imports/{id}", import_status),
]
