"""Calling holders' adapters: a hub-signed POST over the shared client session, and the check of the
holder's signed answer. Every failure becomes the problem PROTOCOL.md names (404, 502 or 504).

A forward naming a `recipient` asks for a sealed answer: the holder's envelope must verify with an active key of
the holder and answer this exchange with exactly the fields and the key asked for (`502 bad-seal` otherwise); the
hub passes it on as signed, and keeps only its ciphertext's digest. It never holds a key that opens it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aiohttp

from broker.base import errors, wire
from broker.base.envelopes import EnvelopeInvalid, check_envelope, read_envelope, verify_envelope
from broker.base.signing import (
    Request,
    Response,
    SignatureProblem,
    SigningKey,
    read_signature_input,
    sign_request,
    verify_response,
)
from directory.store import AgencyEntry, KeyEntry, key_refusal

JSON, NDJSON = "application/json", "application/x-ndjson"
KeyLookup = Callable[[str], Awaitable[KeyEntry | None]]


@dataclass(frozen=True)
class Sealed:
    """A holder's sealed answer, checked: its envelope as the holder signed it, the holder's key that signed it,
    and its ciphertext's digest (for the audit record)."""

    envelope: dict[str, str]
    holder_key: KeyEntry
    digest: str


Answer = dict[str, Any] | Sealed  # a record's `data`, or its sealed answer


class HolderClient:
    def __init__(self, session: aiohttp.ClientSession, hub_key: SigningKey, keys: KeyLookup, timeout_s: float) -> None:
        self._session = session
        self._hub_key = hub_key
        self._keys = keys
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)

    async def post(self, holder: AgencyEntry, path: str, payload: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """POST a hub-signed JSON body to the holder's adapter; return its verified status and JSON answer."""
        status, answer = await self._signed_post(holder, path, json.dumps(payload, separators=(",", ":")).encode())
        return status, _object(holder, answer)

    async def records(self, holder: AgencyEntry, payload: dict[str, Any]) -> Answer:
        """Ask the holder for a subject's record; return its `data` object, or its sealed answer where `payload`
        names a recipient."""
        status, document = await self.post(holder, "/v1/records", payload)
        return await self._answer(holder, payload, status, document, document)

    async def chunk(self, holder: AgencyEntry, payloads: Sequence[dict[str, Any]]) -> list[Answer | Exception]:
        """Ask the holder for a chunk of a batch's lines (`POST /v1/records/batch`: hub-signed NDJSON, a request a
        line, answered by the holder's signed NDJSON, a line for each in order): each line's `data` object, or the
        problem that line stops with, as `records` reads a single answer. A chunk the holder refuses or answers
        badly as a whole raises its problem (502, 504)."""
        body = b"".join(json.dumps(payload, separators=(",", ":")).encode() + b"\n" for payload in payloads)
        status, answer = await self._signed_post(holder, "/v1/records/batch", body, NDJSON)
        lines = answer.splitlines()
        if status != 200 or len(lines) != len(payloads):
            raise errors.BadHolderAnswer(f"holder {holder.id!r} answered a chunk of {len(payloads)} lines badly")
        results: list[Answer | Exception] = []
        for payload, line in zip(payloads, lines, strict=True):
            document = _object(holder, line)
            if document.get("exchange") != payload["exchange"]:
                raise errors.BadHolderAnswer(f"holder {holder.id!r} answered a chunk's lines out of order")
            problem = document.get("problem")
            try:
                refusal = problem if isinstance(problem, dict) else {}
                results.append(await self._answer(holder, payload, document.get("status"), refusal, document))
            except errors.Problem as refused:
                results.append(refused)
        return results

    async def _answer(
        self, holder: AgencyEntry, payload: dict[str, Any], status: object, problem: dict[str, Any], answer: Any
    ) -> Answer:
        """The answer to one request: its data, or where the request named a recipient, its checked sealed answer."""
        recipient = payload.get("recipient")
        if recipient is None:
            return _data(holder, status, problem, answer)
        _refusal(holder, status, problem)
        if status != 200 or not isinstance(answer.get("sealed"), dict):
            raise errors.BadHolderAnswer(f"holder {holder.id!r} answered {status} without a sealed answer")
        try:
            envelope = read_envelope(answer["sealed"])
            key = await self._holder_key(holder, envelope.key_id)
            if key is None:
                raise EnvelopeInvalid(f"key {envelope.key_id[:128]!r} is not an active key of {holder.id!r}")
            verify_envelope(envelope, key.public_key)
            check_envelope(envelope, payload["exchange"], payload["fields"], recipient["key_id"])
        except EnvelopeInvalid as error:
            raise errors.BadSeal(f"holder {holder.id!r}: {error}") from error
        return Sealed(answer["sealed"], key, "sha-256:" + hashlib.sha256(envelope.ct).hexdigest())

    async def _signed_post(
        self, holder: AgencyEntry, path: str, body: bytes, content_type: str = JSON
    ) -> tuple[int, bytes]:
        """POST a hub-signed body to the holder's adapter; its status and body, once its signature verifies."""
        url = holder.adapter_url.rstrip("/") + path
        headers = sign_request("POST", url, body, self._hub_key, content_type)
        try:
            async with self._session.post(url, data=body, headers=headers, timeout=self._timeout) as answer:
                answer_body = await answer.read()
                status, answer_headers = answer.status, dict(answer.headers)
        except TimeoutError as error:
            raise errors.HolderTimeout(f"holder {holder.id!r} did not answer in time") from error
        except aiohttp.ClientConnectionError as error:
            raise errors.HolderUnreachable(f"holder {holder.id!r} could not be reached") from error
        except aiohttp.ClientError as error:
            raise errors.BadHolderAnswer(f"holder {holder.id!r} broke off its answer") from error
        request = Request("POST", url, headers)
        await self._verify(holder, Response(status, answer_headers, request), answer_body)
        return status, answer_body

    async def _verify(self, holder: AgencyEntry, response: Response, body: bytes) -> None:
        try:
            key_id = read_signature_input(response.headers, require_nonce=False).key_id
            key = await self._holder_key(holder, key_id)
            if key is None:
                raise SignatureProblem("bad-signature", f"key {key_id!r} is not an active key of {holder.id!r}")
            verify_response(response, body, key_id, key.public_key)
        except SignatureProblem as problem:
            raise errors.BadHolderAnswer(f"holder {holder.id!r}'s answer is not validly signed: {problem}") from problem

    async def _holder_key(self, holder: AgencyEntry, key_id: str) -> KeyEntry | None:
        """The holder's signing key `key_id`, if it is one of its keys and active now."""
        key = await self._keys(key_id)
        if key is None or key.principal_id != holder.id or key_refusal(key, datetime.now(UTC)) is not None:
            return None
        return key


def _object(holder: AgencyEntry, body: bytes) -> dict[str, Any]:
    try:
        document = wire.loads(body)
    except errors.Problem as error:  # the hub passes on only what any requester's parser reads the same
        raise errors.BadHolderAnswer(f"holder {holder.id!r} answered with invalid JSON: {error}") from error
    if not isinstance(document, dict):
        raise errors.BadHolderAnswer(f"holder {holder.id!r} answered with a non-object")
    return document


def _data(holder: AgencyEntry, status: object, problem: dict[str, Any], answer: dict[str, Any]) -> dict[str, Any]:
    """The `data` of a holder's answer to one request (its status, its problem if it is one, the answer), or the
    problem it stops the exchange with."""
    _refusal(holder, status, problem)
    data = answer.get("data")
    if status != 200 or not isinstance(data, dict):
        raise errors.BadHolderAnswer(f"holder {holder.id!r} answered {status} without a data object")
    return data


def _refusal(holder: AgencyEntry, status: object, problem: dict[str, Any]) -> None:
    """The problem a holder's refusal stops the exchange with, where it is one the requester is told as such."""
    if status == 404 and str(problem.get("type", "")).endswith("/unknown-subject"):
        raise errors.UnknownSubject(f"holder {holder.id!r} does not know this subject")
    if status == 422 and str(problem.get("type", "")).endswith("/invalid"):
        # The requester's params do not suit the category: the question's fault, not the holder's.
        raise errors.Invalid(f"holder {holder.id!r} refused the params: {str(problem.get('detail', ''))[:300]}")
