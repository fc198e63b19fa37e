"""The client an agency's applications use to ask the hub: it signs each request with the agency's key,
verifies the hub's signed answer (bound to this very request), and turns problems into typed exceptions.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import aiohttp
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from broker.signing import Request, Response, SigningKey, sign_request, verify_response


class HubProblem(Exception):
    """The hub refused or failed the request; `name` is the last segment of the problem type."""

    def __init__(self, status: int, document: dict[str, Any]) -> None:
        self.status = status
        self.document = document
        self.type = str(document.get("type", ""))
        self.name = self.type.rsplit("/", 1)[-1]
        self.exchange = document.get("exchange")
        super().__init__(f"{status} {self.name}: {document.get('detail', '')}")


@dataclass(frozen=True)
class ExchangeResult:
    status: int  # 200 delivered, 202 waiting for a privacy officer
    exchange: str
    zone: str
    holder: str | None
    data: dict[str, Any] | None
    review: str | None


class HubClient:
    def __init__(
        self,
        hub_url: str,
        key: SigningKey,
        hub_key_id: str,
        hub_public_key: Ed25519PublicKey,
        session: aiohttp.ClientSession,
    ) -> None:
        self._hub_url = hub_url.rstrip("/")
        self._key = key
        self._hub_key_id = hub_key_id
        self._hub_public_key = hub_public_key
        self._session = session

    async def exchange(
        self,
        subject: str,
        category: str,
        purpose: str,
        params: dict[str, Any] | None = None,
        review: str | None = None,
    ) -> ExchangeResult:
        document: dict[str, Any] = {"subject": subject, "category": category, "purpose": purpose}
        if params:
            document["params"] = params
        if review is not None:
            document["review"] = review
        status, answer = await self.call("POST", "/v1/exchanges", document)
        return ExchangeResult(
            status,
            answer["exchange"],
            answer["zone"],
            answer.get("holder"),
            answer.get("data"),
            answer.get("review"),
        )

    async def call(
        self, method: str, path: str, document: dict[str, Any] | None = None
    ) -> tuple[int, dict[str, Any]]:
        """A signed call to the hub; the verified JSON answer, or HubProblem for a 4xx/5xx."""
        url = self._hub_url + path
        body = None if document is None else json.dumps(document, separators=(",", ":")).encode()
        headers = sign_request(method, url, body, self._key)
        async with self._session.request(method, url, data=body, headers=headers) as answer:
            answer_body = await answer.read()
            status, answer_headers = answer.status, dict(answer.headers)
        bound = {"Content-Digest": headers["Content-Digest"]} if body is not None else {}
        verify_response(
            Response(status, answer_headers, Request(method, url, bound)),
            answer_body,
            self._hub_key_id,
            self._hub_public_key,
        )
        result = json.loads(answer_body)
        if status >= 400:
            raise HubProblem(status, result)
        return status, result
