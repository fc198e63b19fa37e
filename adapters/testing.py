"""A stand-in hub for testing an adapter as the hub will call it: requests signed with a key of its own
(which the adapter is built to trust), answers checked against the agency's key and bound to the request.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aiohttp
from aiohttp.test_utils import TestServer

from adapters.client import require_binding
from adapters.config import AdapterConfig, build_adapter
from adapters.server import Adapter
from broker.base.change_events import ChangeNotification, to_event
from broker.base.signing import Request, Response, SigningKey, generate_key, sign_request, verify_response


@dataclass
class StandInHub:
    adapter: Adapter
    key: SigningKey  # the stand-in hub's own key
    agency_key_id: str
    public_url: str  # what the adapter believes its URL is: the hub signs it as @target-uri
    server: TestServer
    session: aiohttp.ClientSession

    async def records(
        self,
        subject: str,
        category: str,
        params: dict[str, Any] | None = None,
        purpose: str = "benefit-eligibility",
        requester: str = "test-requester",
    ) -> tuple[int, dict[str, Any]]:
        """Ask the adapter for a record as the hub forwards an exchange; the verified status and answer."""
        document = {
            "exchange": secrets.token_hex(8),
            "requester": requester,
            "subject": subject,
            "category": category,
            "purpose": purpose,
            "params": params or {},
        }
        return await self.post("/v1/records", document)

    async def chunk(self, lines: list[dict[str, Any] | bytes]) -> tuple[int, list[dict[str, Any]]]:
        """Ask the adapter for a chunk of a batch as the hub forwards one (`POST /v1/records/batch`, NDJSON): the
        verified status and answer lines (a refused chunk: its problem, as the only line)."""
        body = b"".join((line if isinstance(line, bytes) else json.dumps(line).encode()) + b"\n" for line in lines)
        status, raw = await self.signed_post("/v1/records/batch", body, "application/x-ndjson")
        return status, [json.loads(line) for line in raw.splitlines()]

    async def notify(self, notification: str, subject: str, category: str, event: str = "updated") -> int:
        """Deliver a change notification as the hub does; the adapter's status."""
        notice = ChangeNotification(notification, "test-holder", subject, category, event)
        event_message = to_event(notice, datetime.now(UTC), "https://hub.test")
        status, _ = await self.post("/v1/notifications", event_message.body, event_message.headers["content-type"])
        return status

    async def post(
        self, path: str, document: dict[str, Any] | bytes, content_type: str = "application/json"
    ) -> tuple[int, dict[str, Any]]:
        body = document if isinstance(document, bytes) else json.dumps(document).encode()
        status, raw = await self.signed_post(path, body, content_type)
        answer_document: dict[str, Any] = json.loads(raw)
        return status, answer_document

    async def signed_post(self, path: str, body: bytes, content_type: str) -> tuple[int, bytes]:
        """POST `body` signed as the hub signs, the answer checked as the hub checks it: its status and body."""
        signed_url = self.public_url + path
        headers = sign_request("POST", signed_url, body, self.key, content_type)
        async with self.session.post(self.server.make_url(path), data=body, headers=headers) as answer:
            raw, status, answer_headers = await answer.read(), answer.status, dict(answer.headers)
        bound = Request("POST", signed_url, {"Content-Digest": headers["Content-Digest"]})
        covered = verify_response(
            Response(status, answer_headers, bound), raw, self.agency_key_id, self.adapter.public_key
        )
        require_binding(covered, sent_body=True)
        return status, raw


@asynccontextmanager
async def stand_in_hub(config: AdapterConfig) -> AsyncIterator[StandInHub]:
    """The adapter `config` describes, served on a loopback port and trusting a fresh stand-in hub key."""
    key = SigningKey("stand-in-hub", generate_key())
    adapter = await asyncio.to_thread(build_adapter, config, hub_key_id=key.key_id, hub_public_key=key.public_key)
    server = TestServer(adapter.app(), host="127.0.0.1")
    await server.start_server()
    try:
        async with aiohttp.ClientSession() as session:
            yield StandInHub(adapter, key, config.key_id, config.public_url.rstrip("/"), server, session)
    finally:
        await server.close()
