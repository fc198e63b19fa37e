"""The adapter an agency runs in front of its own store: it verifies the hub's signature, checks the category's params,
calls the agency's handler (or store) for the category asked, and answers signed with the agency's key, bound to the
request. It also receives the hub's change notifications, once each.

Chunks. A batch's lines for this holder come as one signed NDJSON request (`POST /v1/records/batch`, up to
MAX_CHUNK_LINES lines of the single request's JSON) and are answered by one signed NDJSON body, a line for each line
in the same order: `{"exchange", "status", "data"}` or `{"exchange", "status", "problem"}`. A line that fails fails
alone. A request for a sealed category names the fields allowed and the requester's key (`fields`, `recipient`): its
record is answered as `{"sealed": envelope}`, kept to those fields, encrypted to that key and signed
(adapters/sealing.py), on a chunk's line too. A category whose store answers many requests at once (`fetch_many`:
SQL and CSV stores) answers the chunk's lines with set-based look-ups; any other handler is called for each line,
ANSWERING_AT_ONCE at a time.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import structlog
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from adapters.mapping import jsonable
from adapters.nonces import NonceWindow
from adapters.recent import RecentIds
from adapters.sealing import Recipient, seal
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
MAX_CHUNK_BYTES = 16 * 1024 * 1024  # a chunk of a batch (`POST /v1/records/batch`)
MAX_CHUNK_LINES = 10_000
ANSWERING_AT_ONCE = 16  # a chunk's lines for a handler without `many`: answered this many at a time
NDJSON = "application/x-ndjson"
log = structlog.get_logger("crossroads.adapter")


@dataclass(frozen=True)
class RecordRequest:
    exchange: str
    requester: str
    subject: str
    category: str
    purpose: str
    params: dict[str, Any] = field(default_factory=dict)
    fields: tuple[str, ...] | None = None  # for a sealed answer: the fields the hub's rule allows (None: all)
    recipient: Recipient | None = None  # for a sealed answer: the requester's key it is encrypted to


class UnknownSubject(Exception):
    """Raised by a handler when the agency's store has no record of the subject."""


class StoreUnavailable(Exception):
    """Raised by a handler when the agency's own system cannot answer now; the adapter answers 503."""


RecordHandler = Callable[[RecordRequest], Awaitable[dict[str, Any]]]
# Many requests of one category at once: per request, its record or the exception a RecordHandler would raise.
ManyHandler = Callable[[Sequence[RecordRequest]], Awaitable[Sequence[dict[str, Any] | Exception]]]
Notification = ChangeNotification  # what a notifications handler is given
NotificationHandler = Callable[[Notification], Awaitable[None]]


class Store(Protocol):
    """An agency system an adapter answers a category from: opened when the adapter starts, closed after."""

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def fetch(self, request: RecordRequest) -> dict[str, Any]: ...


@runtime_checkable
class ManyStore(Store, Protocol):
    """A store that also answers many requests with set-based look-ups."""

    async def fetch_many(self, requests: Sequence[RecordRequest]) -> list[dict[str, Any] | Exception]: ...


class _Refusal(Exception):
    def __init__(self, status: int, name: str, detail: str) -> None:
        super().__init__(detail)
        self.status, self.name, self.detail = status, name, detail


@dataclass(frozen=True)
class _Category:
    handler: RecordHandler
    validate: ParamsValidator | None
    many: ManyHandler | None = None


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

    def category(
        self, name: str, params: ParamsCheck | None = None, many: ManyHandler | None = None
    ) -> Callable[[RecordHandler], RecordHandler]:
        """Register the handler answering `name`; `params` is a JSON Schema or a function raising InvalidParams;
        `many`, if given, answers a chunk's requests of `name` at once."""
        validate = None if params is None else params_validator(params)

        def register(handler: RecordHandler) -> RecordHandler:
            self._categories[name] = _Category(handler, validate, many)
            return handler

        return register

    def serve(self, name: str, store: Store, params: ParamsCheck | None = None) -> None:
        """Answer `name` from `store`, opened with the adapter's application and closed with it."""
        if store not in self._stores:
            self._stores.append(store)
        self.category(name, params, store.fetch_many if isinstance(store, ManyStore) else None)(store.fetch)

    def notifications(self, handler: NotificationHandler) -> NotificationHandler:
        self._on_notification = handler
        return handler

    def app(self) -> web.Application:
        app = web.Application(client_max_size=MAX_CHUNK_BYTES)  # each route checks its own limit
        app.add_routes(
            [
                web.post("/v1/records", self._records),
                web.post("/v1/records/batch", self._chunk),
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
        return self._answer(request, body, 200, self._delivered(record, data))

    async def _chunk(self, request: web.Request) -> web.Response:
        """A chunk of a batch's lines for this holder, answered line by line in one signed NDJSON body."""
        body = await request.read()
        try:
            self._check_signed(request, body)
            lines = body.splitlines()
            if len(lines) > MAX_CHUNK_LINES:
                raise _Refusal(413, "too-large", f"a chunk is at most {MAX_CHUNK_LINES} lines")
        except _Refusal as refusal:
            log.info("chunk.refused", problem=refusal.name, status=refusal.status)
            return self._problem(request, body, refusal)
        answers = await self._answer_lines([_chunk_line(line) for line in lines])
        log.info("chunk.answered", lines=len(lines), delivered=sum(1 for answer in answers if answer["status"] == 200))
        document = b"".join(json.dumps(answer, separators=(",", ":")).encode() + b"\n" for answer in answers)
        return self._signed(request, body, 200, document, NDJSON)

    async def _answer_lines(self, lines: list[RecordRequest | _Refusal]) -> list[dict[str, Any]]:
        """Each line's answer line, in order: its record, or its problem."""
        outcomes: list[dict[str, Any] | _Refusal] = [line if isinstance(line, _Refusal) else {} for line in lines]
        by_category: dict[str, list[tuple[int, RecordRequest]]] = {}
        for index, line in enumerate(lines):
            if isinstance(line, RecordRequest):
                by_category.setdefault(line.category, []).append((index, line))
        for name, asked in by_category.items():
            category = self._categories.get(name)
            records = [record for _, record in asked]
            if category is None:
                unknown = _Refusal(404, "unknown-category", f"{self.agency} does not serve {name!r}")
                answered: list[dict[str, Any] | _Refusal] = [unknown] * len(records)
            else:
                answered = await _answers_of(category, records)
            for (index, _), outcome in zip(asked, answered, strict=True):
                outcomes[index] = outcome
        return [self._answer_line(line, outcome) for line, outcome in zip(lines, outcomes, strict=True)]

    def _answer_line(self, line: RecordRequest | _Refusal, outcome: dict[str, Any] | _Refusal) -> dict[str, Any]:
        if isinstance(outcome, _Refusal):
            exchange = line.exchange if isinstance(line, RecordRequest) else None
            return {"exchange": exchange, "status": outcome.status, "problem": _problem_document(outcome)}
        assert isinstance(line, RecordRequest)  # noqa: S101 -- only a request gets a record; for the type checker
        return {"exchange": line.exchange, "status": 200, **self._delivered(line, outcome)}

    def _delivered(self, record: RecordRequest, data: dict[str, Any]) -> dict[str, Any]:
        """A record's answer: `{"data"}`, or `{"sealed"}` where the hub asked for it sealed."""
        if record.recipient is None:
            return {"data": data}
        return {"sealed": seal(data, record.fields, record.exchange, record.recipient, self._key)}

    async def _notification(self, request: web.Request) -> web.Response:
        body = await request.read()
        try:
            _check_size(body)
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
        _check_size(body)
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
        return self._answer(request, body, refusal.status, _problem_document(refusal), "application/problem+json")

    def _answer(
        self,
        request: web.Request,
        request_body: bytes,
        status: int,
        document: dict[str, Any],
        content_type: str = "application/json",
    ) -> web.Response:
        return self._signed(
            request, request_body, status, json.dumps(document, separators=(",", ":")).encode(), content_type
        )

    def _signed(
        self, request: web.Request, request_body: bytes, status: int, body: bytes, content_type: str
    ) -> web.Response:
        """`body` answered with `status`, signed with the agency's key and bound to the request."""
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
        data = await category.handler(record)
    except Exception as error:
        raise _refusal(record, error) from error
    return _data(record, data)


async def _answers_of(category: _Category, records: list[RecordRequest]) -> list[dict[str, Any] | _Refusal]:
    """Each record's answer or refusal, as `_answer_with` gives it: from the category's `many` handler at once
    (for the records whose params pass), or from its handler, ANSWERING_AT_ONCE records at a time."""
    if category.many is not None:
        return await _at_once(category, category.many, records)
    at_once = asyncio.Semaphore(ANSWERING_AT_ONCE)

    async def one(record: RecordRequest) -> dict[str, Any] | _Refusal:
        async with at_once:
            try:
                return await _answer_with(category, record)
            except _Refusal as refusal:
                return refusal

    return list(await asyncio.gather(*map(one, records)))


async def _at_once(
    category: _Category, many: ManyHandler, records: list[RecordRequest]
) -> list[dict[str, Any] | _Refusal]:
    outcomes: list[dict[str, Any] | _Refusal] = []
    valid: list[RecordRequest] = []  # the records whose params pass, asked of `many`
    for record in records:
        try:
            if category.validate is not None:
                category.validate(record.params)
            valid.append(record)
            outcomes.append({})
        except InvalidParams as error:
            outcomes.append(_refusal(record, error))
    try:
        answered = list(await many(valid)) if valid else []
        if len(answered) != len(valid):
            raise RuntimeError(f"`many` answered {len(answered)} requests of {len(valid)}")
    except Exception as error:  # the whole look-up failed: each of its records fails with it
        answered = [error] * len(valid)
    by_record = {id(record): answer for record, answer in zip(valid, answered, strict=True)}
    for index, record in enumerate(records):
        if id(record) in by_record:
            answer = by_record[id(record)]
            outcomes[index] = (
                _refusal(record, answer) if isinstance(answer, Exception) else _data_or_refusal(record, answer)
            )
    return outcomes


def _check_size(body: bytes) -> None:
    """Refuse a single request or notification over MAX_BODY_BYTES (the application takes chunks' sizes)."""
    if len(body) > MAX_BODY_BYTES:
        raise _Refusal(413, "too-large", f"a request is at most {MAX_BODY_BYTES} bytes")


def _refusal(record: RecordRequest, error: Exception) -> _Refusal:
    """What a handler's exception answers; a failing handler never leaks its error."""
    if isinstance(error, _Refusal):
        return error
    if isinstance(error, InvalidParams):
        return _Refusal(422, "invalid", str(error))
    if isinstance(error, UnknownSubject):
        return _Refusal(404, "unknown-subject", "no record of this subject")
    if isinstance(error, StoreUnavailable):
        log.warning("records.store_unavailable", exchange=record.exchange, category=record.category)
        return _Refusal(503, "unavailable", "the agency's system cannot answer now")
    log.error("records.failed", exchange=record.exchange, category=record.category, error=type(error).__name__)
    return _Refusal(500, "internal", "the adapter could not answer")


def _data(record: RecordRequest, data: Any) -> dict[str, Any]:
    """A handler's record as JSON, or the refusal of a handler that did not answer an object."""
    try:
        document = jsonable(data)
    except Exception as error:
        raise _refusal(record, error) from error
    if not isinstance(document, dict):
        log.error("records.not_an_object", exchange=record.exchange, category=record.category)
        raise _Refusal(500, "internal", "the adapter could not answer")
    return document


def _data_or_refusal(record: RecordRequest, data: Any) -> dict[str, Any] | _Refusal:
    try:
        return _data(record, data)
    except _Refusal as refusal:
        return refusal


def _chunk_line(line: bytes) -> RecordRequest | _Refusal:
    """A chunk's line as the request it makes, or the refusal that says why it is not one."""
    try:
        document = json.loads(line)
    except ValueError:
        return _Refusal(400, "malformed", "the line is not JSON")
    if not isinstance(document, dict):
        return _Refusal(422, "invalid", "a line must be a JSON object")
    try:
        return _record_request(document)
    except _Refusal as refusal:
        return refusal


def _problem_document(refusal: _Refusal) -> dict[str, Any]:
    return {
        "type": PROBLEMS + refusal.name,
        "title": refusal.name.replace("-", " "),
        "status": refusal.status,
        "detail": refusal.detail,
    }


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
    fields, recipient = document.get("fields"), None
    if fields is not None and not (isinstance(fields, list) and all(isinstance(name, str) for name in fields)):
        raise _Refusal(422, "invalid", "fields must be null or a list of field names")
    if document.get("recipient") is not None:
        try:
            recipient = Recipient.from_forward(document["recipient"])
        except ValueError as error:
            raise _Refusal(422, "invalid", str(error)) from error
    return RecordRequest(
        exchange, requester, subject, category, purpose, params, None if fields is None else tuple(fields), recipient
    )
