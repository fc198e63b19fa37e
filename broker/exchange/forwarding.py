"""Calling holders' adapters: a hub-signed POST over the shared client session, and the check of the
holder's signed answer. Every failure becomes the problem PROTOCOL.md names (404, 502 or 504).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any

import aiohttp

from broker.base import errors, wire
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

    async def records(self, holder: AgencyEntry, payload: dict[str, Any]) -> dict[str, Any]:
        """Ask the holder for a subject's record; return its `data` object."""
        status, document = await self.post(holder, "/v1/records", payload)
        return _data(holder, status, document, document)

    async def chunk(self, holder: AgencyEntry, payloads: Sequence[dict[str, Any]]) -> list[dict[str, Any] | Exception]:
        """Ask the holder for a chunk of a batch's lines (`POST /v1/records/batch`: hub-signed NDJSON, a request a
        line, answered by the holder's signed NDJSON, a line for each in order): each line's `data` object, or the
        problem that line stops with, as `records` reads a single answer. A chunk the holder refuses or answers
        badly as a whole raises its problem (502, 504)."""
        body = b"".join(json.dumps(payload, separators=(",", ":")).encode() + b"\n" for payload in payloads)
        status, answer = await self._signed_post(holder, "/v1/records/batch", body, NDJSON)
        lines = answer.splitlines()
        if status != 200 or len(lines) != len(payloads):
            raise errors.BadHolderAnswer(f"holder {holder.id!r} answered a chunk of {len(payloads)} lines badly")
        results: list[dict[str, Any] | Exception] = []
        for payload, line in zip(payloads, lines, strict=True):
            document = _object(holder, line)
            if document.get("exchange") != payload["exchange"]:
                raise errors.BadHolderAnswer(f"holder {holder.id!r} answered a chunk's lines out of order")
            problem = document.get("problem")
            try:
                results.append(
                    _data(holder, document.get("status"), problem if isinstance(problem, dict) else {}, document)
                )
            except errors.Problem as refused:
                results.append(refused)
        return results

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
            key = await self._keys(key_id)
            if key is None or key.principal_id != holder.id or key_refusal(key, datetime.now(UTC)) is not None:
                raise SignatureProblem("bad-signature", f"key {key_id!r} is not an active key of {holder.id!r}")
            verify_response(response, body, key_id, key.public_key)
        except SignatureProblem as problem:
            raise errors.BadHolderAnswer(f"holder {holder.id!r}'s answer is not validly signed: {problem}") from problem


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
    if status == 404 and str(problem.get("type", "")).endswith("/unknown-subject"):
        raise errors.UnknownSubject(f"holder {holder.id!r} does not know this subject")
    if status == 422 and str(problem.get("type", "")).endswith("/invalid"):
        # The requester's params do not suit the category: the question's fault, not the holder's.
        raise errors.Invalid(f"holder {holder.id!r} refused the params: {str(problem.get('detail', ''))[:300]}")
    data = answer.get("data")
    if status != 200 or not isinstance(data, dict):
        raise errors.BadHolderAnswer(f"holder {holder.id!r} answered {status} without a data object")
    return data
