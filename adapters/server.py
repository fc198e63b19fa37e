"""The adapter an agency runs in front of its own store: it verifies the hub's signature, checks the
category's params, calls the agency's handler (or store) for the category asked, and answers signed with
the agency's key, bound to the request. It also receives the hub's change notifications, once each.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import structlog
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from adapters.mapping import jsonable
from adapters.nonces import NonceWindow
from adapters.recent import RecentIds
from adapters.validation import InvalidParams, ParamsCheck, ParamsValidator, params_validator
from broker.base.change_events import ChangeNotification, from_event
from broker.base.signing import (
    Request,
    SignatureProblem,
    SigningKey,
    check_created,
    read_signature_input,
    sign_response,
    verify_request,
)

PROBLEMS = "https://crossroads.example/problems/"
MAX_BODY_BYTES = 64 * 1024
log = structlog.get_logger("crossroads.adapter")


@dataclass(frozen=True)
class RecordRequest:
    exchange: str
    requester: str
    subject: str
    category: str
    purpose: str
    params: dict[str, Any] = field(default_factory=dict)


class UnknownSubject(Exception):
    """Raised by a handler when the agency's store has no record of the subject."""


class StoreUnavailable(Exception):
    """Raised by a handler when the agency's own system cannot answer now; the adapter answers 503."""


RecordHandler = Callable[[RecordRequest], Awaitable[dict[str, Any]]]
Notification = ChangeNotification  # what a notifications handler is given
NotificationHandler = Callable[[Notification], Awaitable[None]]


class Store(Protocol):
    """An agency system an adapter answers a category from: opened when the adapter starts, closed after."""

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def fetch(self, request: RecordRequest) -> dict[str, Any]: ...


class _Refusal(Exception):
    def __init__(self, status: int, name: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.name, self.detail = status, name, detail


@dataclass(frozen=True)
class _Category:
    handler: RecordHandler
    validate: ParamsValidator | None


class Adapter:
    """Declare handlers with `@adapter.category("income")` (or `adapter.serve("income", store)`), then
    serve `adapter.app()`."""

    def __init__(
        self,
        agency: str,
        key: SigningKey,
        hub_key_id: str,
        hub_public_key: Ed25519PublicKey,
        public_url: str,
        notifications_remembered: int = 10_000,
    ) -> None:
        self.agency = agency
        self._key = key
        self._hub_key_id = hub_key_id
        self._hub_public_key = hub_public_key
        self._public_url = public_url.rstrip("/")
        self._categories: dict[str, _Category] = {}
        self._stores: list[Store] = []
        self._on_notification: NotificationHandler | None = None
        self._nonces = NonceWindow()
        self._notifications_seen = RecentIds(notifications_remembered)

    @property
    def public_key(self) -> Ed25519PublicKey:
        """The agency's public key, which the hub verifies this adapter's answers with."""
        return self._key.public_key

    @property
    def categories(self) -> list[str]:
        return sorted(self._categories)

    def category(self, name: str, params: ParamsCheck | None = None) -> Callable[[RecordHandler], RecordHandler]:
        """Register the handler answering `name`; `params` is a JSON Schema or a function raising InvalidParams."""
        validate = None if params is None else params_validator(params)

        def register(handler: RecordHandler) -> RecordHandler:
            self._categories[name] = _Category(handler, validate)
            return handler

        return register

    def serve(self, name: str, store: Store, params: ParamsCheck | None = None) -> None:
        """Answer `name` from `store`, opened with the adapter's application and closed with it."""
        if store not in self._stores:
            self._stores.append(store)
        self.category(name, params)(store.fetch)

    def notifications(self, handler: NotificationHandler) -> NotificationHandler:
        self._on_notification = handler
        return handler

    def app(self) -> web.Application:
        app = web.Application(client_max_size=MAX_BODY_BYTES)
        app.add_routes(
            [
                web.post("/v1/records", self._records),
                web.post("/v1/notifications", self._notification),
                web.get("/healthz", self._health),
            ]
        )
        app.cleanup_ctx.append(self._lifetime)
        return app

    async def _lifetime(self, app: web.Application) -> AsyncIterator[None]:
        opened: list[Store] = []
        try:
            for store in self._stores:
                await store.open()
                opened.append(store)
            log.info("adapter.started", agency=self.agency, categories=self.categories)
            yield
        finally:
            for store in reversed(opened):
                await store.close()

    async def _health(self, request: web.Request) -> web.Response:
        return self._answer(request, b"", 200, {"status": "alive", "agency": self.agency})

    async def _records(self, request: web.Request) -> web.Response:
        body = await request.read()
        exchange = None
        try:
            record = _record_request(self._verified(request, body))
            exchange = record.exchange
            category = self._categories.get(record.category)
            if category is None:
                raise _Refusal(404, "unknown-category", f"{self.agency} does not serve {record.category!r}")
            data = await _answer_with(category, record)
        except _Refusal as refusal:
            log.info("records.refused", exchange=exchange, problem=refusal.name, status=refusal.status)
            return self._problem(request, body, refusal)
        log.info("records.answered", exchange=record.exchange, category=record.category, requester=record.requester)
        return self._answer(request, body, 200, {"data": data})

    async def _notification(self, request: web.Request) -> web.Response:
        body = await request.read()
        try:
            self._check_signed(request, body)
            notice = from_event(request.headers.get("Content-Type", ""), body)
        except _Refusal as refusal:
            return self._problem(request, body, refusal)
        except ValueError as error:
            return self._problem(request, body, _Refusal(422, "invalid", str(error)))
        if notice.notification in self._notifications_seen:
            log.info("notification.repeated", notification=notice.notification)
        else:
            if self._on_notification is not None:
                try:
                    await self._on_notification(notice)
                except Exception as error:  # not acknowledged: the hub delivers it again later
                    log.error("notification.failed", notification=notice.notification, error=type(error).__name__)
                    unhandled = _Refusal(503, "unavailable", "the notification could not be handled; deliver it again")
                    return self._problem(request, body, unhandled)
            self._notifications_seen.add(notice.notification)
            log.info("notification.received", notification=notice.notification, category=notice.category)
        return self._answer(request, body, 200, {"notification": notice.notification, "received": True})

    def _verified(self, request: web.Request, body: bytes) -> dict[str, Any]:
        """The JSON body of a request the hub signed, or the refusal that says why it is not one."""
        self._check_signed(request, body)
        try:
            document = json.loads(body)
        except ValueError as error:
            raise _Refusal(400, "malformed", "the body is not JSON") from error
        if not isinstance(document, dict):
            raise _Refusal(422, "invalid", "the body must be a JSON object")
        return document

    def _check_signed(self, request: web.Request, body: bytes) -> None:
        """Refuse a request the hub did not sign, or one it signed before (a replay)."""
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


async def _answer_with(category: _Category, record: RecordRequest) -> dict[str, Any]:
    """The handler's answer, or the refusal its outcome calls for; a failing handler never leaks its error."""
    try:
        if category.validate is not None:
            category.validate(record.params)
        data = jsonable(await category.handler(record))
    except InvalidParams as error:
        raise _Refusal(422, "invalid", str(error)) from error
    except UnknownSubject as error:
        raise _Refusal(404, "unknown-subject", "no record of this subject") from error
    except StoreUnavailable as error:
        log.warning("records.store_unavailable", exchange=record.exchange, category=record.category)
        raise _Refusal(503, "unavailable", "the agency's system cannot answer now") from error
    except Exception as error:
        log.error("records.failed", exchange=record.exchange, category=record.category, error=type(error).__name__)
        raise _Refusal(500, "internal", "the adapter could not answer") from error
    if not isinstance(data, dict):
        log.error("records.not_an_object", exchange=record.exchange, category=record.category)
        raise _Refusal(500, "internal", "the adapter could not answer")
    return data


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
