"""Bodies too large to hold in memory (a bulk import of references, a batch of exchange requests): streamed to a
file in the hub's spool folder as they arrive, their digests taken on the way, so that the signature and
Content-Digest are checked against the whole body without ever holding it. A file nobody kept is deleted once the
call is answered."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import web

from broker.base import errors
from broker.base.signing import Digested, Digesting

UPLOAD_ROUTES = frozenset({("POST", "/v1/directory/imports"), ("POST", "/v1/batches")})
CHUNK = 1 << 16


@dataclass
class Upload:
    path: Path
    digested: Digested
    kept: bool = field(default=False)  # a handler took the file over: it is not deleted after the call


UPLOAD = web.RequestKey("upload", Upload)
NDJSON = "application/x-ndjson"


def ndjson_upload(request: web.Request) -> Upload:
    """The request's upload (the file the middleware streamed its body to), once its Content-Type says NDJSON."""
    content_type = request.headers.get("Content-Type", "")
    if content_type.split(";")[0].strip().lower() != NDJSON:
        raise errors.UnsupportedMediaType(f"Content-Type must be {NDJSON}, not {content_type or 'absent'!r}")
    return request[UPLOAD]


def takes_upload(request: web.Request) -> bool:
    return (request.method, request.path) in UPLOAD_ROUTES


@asynccontextmanager
async def receiving(request: web.Request, folder: Path, limit: int) -> AsyncIterator[Upload]:
    """The request's body, streamed into a new file in `folder`, refused past `limit` bytes (413 too-large)."""
    if request.content_length is not None and request.content_length > limit:
        raise errors.TooLarge(f"the body exceeds {limit} bytes")
    await asyncio.to_thread(folder.mkdir, parents=True, exist_ok=True)
    path = folder / f"upload-{uuid.uuid4()}.ndjson"
    digesting = Digesting()
    upload: Upload | None = None
    try:
        file = await asyncio.to_thread(path.open, "wb")
        try:
            async for chunk in request.content.iter_chunked(CHUNK):
                digesting.update(chunk)
                if digesting.size > limit:
                    raise errors.TooLarge(f"the body exceeds {limit} bytes")
                await asyncio.to_thread(file.write, chunk)
        finally:
            await asyncio.to_thread(file.close)
        upload = Upload(path, digesting.digested())
        yield upload
    finally:
        if upload is None or not upload.kept:
            with suppress(OSError):
                await asyncio.to_thread(path.unlink, missing_ok=True)
