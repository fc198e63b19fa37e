"""The adapter an agency runs in front of its own store: it verifies the hub's signature, calls the
agency's handler for the category asked, and answers signed with the agency's key, bound to the request.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import structlog
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from adapters.nonces import NonceWindow
from broker.signing import (
    Request,
    SignatureProblem,
    SigningKey,
    check_created,
    read_signature_input,
    sign_response,
    verify_request,
)

PROBLEMS = "https://crossroads.example/problems/"
log = structlog.get_logger("crossroads.adapter")


@dataclass(frozen=True)
class RecordRequest:
    exchange: str
    requester: str
    subject: str
    category: str
    purpose: str
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Notification:
    notification: str
    subject: str
    category: str
    event: str


class UnknownSubject(Exception):
    """Raised by a handler when the agency's store has no record of the subject."""


RecordHandler = Callable[[RecordRequest], Awaitable[dict[str, Any]]]
NotificationHandler = Callable[[Notification], Awaitable[None]]


class _Refusal(Exception):
    def __init__(self, status: int, name: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.name, self.detail = status, name, detail


class Adapter:
    """Declare handlers with `@adapter.category("income")`, then serve `adapter.app()`."""

    def __init__(
        self, agency: str, key: SigningKey, hub_key_id: str, hub_public_key: Ed25519PublicKey, public_url: str
    ) -> None:
        self.agency = agency
        self._key = key
        self._hub_key_id = hub_key_id
        self._hub_public_key = hub_public_key
        self._public_url = public_url.rstrip("/")
        self._handlers: dict[str, RecordHandler] = {}
        self._on_notification: NotificationHandler | None = None
        self._nonces = NonceWindow()
        self._notifications_seen: set[str] = set()

    def category(self, name: str) -> Callable[[RecordHandler], RecordHandler]:
        def register(handler: RecordHandler) -> RecordHandler:
            self._handlers[name] = handler
            return handler

        return register

    def notifications(self, handler: NotificationHandler) -> NotificationHandler:
        self._on_notification = handler
        return handler

    def app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024)
        app.add_routes(
            [
                web.post("/v1/records", self._records),
                web.post("/v1/notifications", self._notification),
                web.get("/healthz", self._health),
            ]
        )
        return app

    async def _health(self, request: web.Request) -> web.Response:
        return self._answer(request, b"", 200, {"status": "alive", "agency": self.agency})

    async def _records(self, request: web.Request) -> web.Response:
        body = await request.read()
        try:
            document = self._verified(request, body)
            record = _record_request(document)
            handler = self._handlers.get(record.category)
            if handler is None:
                raise _Refusal(404, "unknown-category", f"{self.agency} does not serve {record.category!r}")
            try:
                data = await handler(record)
            except UnknownSubject as error:
                raise _Refusal(404, "unknown-subject", "no record of this subject") from error
        except _Refusal as refusal:
            log.info("records.refused", problem=refusal.name, status=refusal.status)
            return self._problem(request, body, refusal)
        log.info("records.answered", exchange=record.exchange, category=record.category, requester=record.requester)
        return self._answer(request, body, 200, {"data": data})

    async def _notification(self, request: web.Request) -> web.Response:
        body = await request.read()
        try:
            document = self._verified(request, body)
            notice = Notification(*(str(document[name]) for name in ("notification", "subject", "category", "event")))
        except _Refusal as refusal:
            return self._problem(request, body, refusal)
        except KeyError:
            return self._problem(request, body, _Refusal(422, "invalid", "incomplete notification"))
        if notice.notification not in self._notifications_seen and self._on_notification is not None:
            await self._on_notification(notice)
        self._notifications_seen.add(notice.notification)
        return self._answer(request, body, 200, {"notification": notice.notification, "received": True})

    def _verified(self, request: web.Request, body: bytes) -> dict[str, Any]:
        """The body of a request the hub signed, or the refusal that says why it is not one."""
        try:
            signature = read_signature_input(request.headers)
            if signature.key_id != self._hub_key_id:
                raise SignatureProblem("unknown-key", f"only the hub's key {self._hub_key_id!r} is trusted")
            check_created(signature.created, time.time())
            verify_request(
                Request(request.method, self._public_url + request.raw_path, request.headers),
                body,
                signature,
                self._hub_public_key,
            )
        except SignatureProblem as problem:
            raise _Refusal(401, problem.kind, problem.detail) from problem
        if not self._nonces.accept(signature.nonce or "", time.time()):
            raise _Refusal(409, "replay", "nonce already used")
        try:
            document = json.loads(body)
        except ValueError as error:
            raise _Refusal(400, "malformed", "the body is not JSON") from error
        if not isinstance(document, dict):
            raise _Refusal(422, "invalid", "the body must be a JSON object")
        return document

    def _problem(self, request: web.Request, body: bytes, refusal: _Refusal) -> web.Response:
        document = {
            "type": PROBLEMS + refusal.name,
            "title": refusal.name.replace("-", " "),
            "status": refusal.status,
            "detail": refusal.detail,
        }
        return self._answer(request, body, refusal.status, document, "application/problem+json")

    def _answer(
        self,
        request: web.Request,
        request_body: bytes,
        status: int,
        document: dict[str, Any],
        content_type: str = "application/json",
    ) -> web.Response:
        body = json.dumps(document, separators=(",", ":")).encode()
        bound = Request(
            request.method,
            self._public_url + request.raw_path,
            {"Content-Digest": request.headers["Content-Digest"]}
            if request_body and "Content-Digest" in request.headers
            else {},
        )
        headers = sign_response(status, {"Content-Type": content_type}, body, self._key, bound)
        return web.Response(status=status, body=body, headers=headers)


def _record_request(document: dict[str, Any]) -> RecordRequest:
    try:
        params = document.get("params") or {}
        if not isinstance(params, dict):
            raise _Refusal(422, "invalid", "params must be an object")
        exchange, requester, subject, category, purpose = (
            str(document[name]) for name in ("exchange", "requester", "subject", "category", "purpose")
        )
    except KeyError as error:
        raise _Refusal(422, "invalid", f"missing field {error}") from error
    return RecordRequest(exchange, requester, subject, category, purpose, params)
