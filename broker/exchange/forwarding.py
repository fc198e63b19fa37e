"""Calling holders' adapters: a hub-signed POST over the shared client session, and the check of the
holder's signed answer. Every failure becomes the problem PROTOCOL.md names (404, 502 or 504).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
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

KeyLookup = Callable[[str], Awaitable[KeyEntry | None]]


class HolderClient:
    def __init__(self, session: aiohttp.ClientSession, hub_key: SigningKey, keys: KeyLookup, timeout_s: float) -> None:
        self._session = session
        self._hub_key = hub_key
        self._keys = keys
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)

    async def post(self, holder: AgencyEntry, path: str, payload: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """POST a hub-signed JSON body to the holder's adapter; return its verified status and JSON answer."""
        url = holder.adapter_url.rstrip("/") + path
        body = json.dumps(payload, separators=(",", ":")).encode()
        headers = sign_request("POST", url, body, self._hub_key)
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
        try:
            document = wire.loads(answer_body)
        except errors.Problem as error:  # the hub passes on only what any requester's parser reads the same
            raise errors.BadHolderAnswer(f"holder {holder.id!r} answered with invalid JSON: {error}") from error
        if not isinstance(document, dict):
            raise errors.BadHolderAnswer(f"holder {holder.id!r} answered with a non-object")
        return status, document

    async def records(self, holder: AgencyEntry, payload: dict[str, Any]) -> dict[str, Any]:
        """Ask the holder for a subject's record; return its `data` object."""
        status, document = await self.post(holder, "/v1/records", payload)
        if status == 404 and str(document.get("type", "")).endswith("/unknown-subject"):
            raise errors.UnknownSubject(f"holder {holder.id!r} does not know this subject")
        if status == 422 and str(document.get("type", "")).endswith("/invalid"):
            # The requester's params do not suit the category: the question's fault, not the holder's.
            raise errors.Invalid(f"holder {holder.id!r} refused the params: {str(document.get('detail', ''))[:300]}")
        data = document.get("data")
        if status != 200 or not isinstance(data, dict):
            raise errors.BadHolderAnswer(f"holder {holder.id!r} answered {status} without a data object")
        return data

    async def _verify(self, holder: AgencyEntry, response: Response, body: bytes) -> None:
        try:
            key_id = read_signature_input(response.headers, require_nonce=False).key_id
            key = await self._keys(key_id)
            if key is None or key.principal_id != holder.id or key_refusal(key, datetime.now(UTC)) is not None:
                raise SignatureProblem("bad-signature", f"key {key_id!r} is not an active key of {holder.id!r}")
            verify_response(response, body, key_id, key.public_key)
        except SignatureProblem as problem:
            raise errors.BadHolderAnswer(f"holder {holder.id!r}'s answer is not validly signed: {problem}") from problem
