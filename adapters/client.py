"""The client an agency's applications use to ask the hub: it signs each request with the agency's key,
verifies the hub's signed answer (bound to this very request), turns problems into typed exceptions, and
retries only what is safe to retry, re-signed with a fresh nonce each time. A sealed answer is opened with the
agency's sealing keys, once its holder's signature, its exchange and its key check (adapters/sealing.py).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import aiohttp
import structlog
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from multidict import CIMultiDict
from yarl import URL

from adapters.problems import HubProblem, PendingReview, problem_for
from adapters.sealing import open_sealed
from broker.base.envelopes import EnvelopeInvalid
from broker.base.signing import (
    Request,
    Response,
    SignatureProblem,
    SigningKey,
    digest_file,
    load_public_key,
    sign_request,
    verify_response,
)

__all__ = ["ExchangeQuestion", "ExchangeResult", "HubClient", "HubProblem", "RetryPolicy", "UnverifiedAnswer"]

log = structlog.get_logger("crossroads.client")

BINDING = ('"@method";req', '"@target-uri";req')
BODY_BINDING = '"content-digest";req'


class UnverifiedAnswer(SignatureProblem):
    """The answer is not validly signed by the hub, or not bound to the request this client sent."""


@dataclass(frozen=True)
class ExchangeQuestion:
    """What was asked, kept with its result so that a grey-zone exchange can be repeated once approved."""

    subject: str
    category: str
    purpose: str
    params: dict[str, Any] = field(default_factory=dict)
    justification: str | None = None


@dataclass(frozen=True)
class ExchangeResult:
    status: int  # 200 delivered, 202 waiting for a privacy officer
    exchange: str
    zone: str
    holder: str | None
    data: dict[str, Any] | None  # a sealed answer's, opened
    review: str | None
    question: ExchangeQuestion | None = None
    sealed: dict[str, str] | None = None  # a sealed answer's envelope as its holder signed it, kept as evidence

    @property
    def pending(self) -> bool:
        return self.status == 202


@dataclass(frozen=True)
class RetryPolicy:
    """What the client repeats: a 429 rate limit after its Retry-After (if at most `max_wait_s`), a 503 of a
    repeatable request, and a connection that could not be opened (nothing was sent). Never a decision."""

    attempts: int = 3
    backoff_s: float = 0.25  # the first wait after a 503 or a refused connection; doubled each time
    max_wait_s: float = 10.0


NO_RETRY = RetryPolicy(attempts=1)


def repeatable(method: str, path: str) -> bool:
    """Requests whose repetition changes nothing but a new audit record: reads, and exchanges.

    A 503 may come after an operator's change (a consent, a decision) was stored but its audit record was
    not; repeating that would change state twice, so it is left to the caller.
    """
    return method.upper() in ("GET", "HEAD") or path.split("?")[0] == "/v1/exchanges"


def retry_wait(policy: RetryPolicy, attempt: int, method: str, path: str, problem: HubProblem) -> float | None:
    """Seconds to wait before repeating a request that got `problem` on try number `attempt`, or None."""
    if attempt >= policy.attempts:
        return None
    if problem.name == "rate-limited":
        wait = problem.retry_after
        return wait if wait is not None and wait <= policy.max_wait_s else None
    if problem.status == 503 and repeatable(method, path):
        return min(policy.max_wait_s, problem.retry_after or policy.backoff_s * 2 ** (attempt - 1))
    return None


def require_binding(covered: tuple[str, ...], sent_body: bool, status: int = 200) -> None:
    """The hub's answer must cover this request's method and target, marked `;req`, and a success answer
    to a request with a body also its digest: that is what ties the answer to this very request.

    A problem answered before the hub could check the body (401, 413) cannot vouch for its digest; such an
    answer, replayed, could only refuse, never deliver, so method and target suffice for problems.
    """
    needed = (*BINDING, BODY_BINDING) if sent_body and status < 400 else BINDING
    absent = [component for component in needed if component not in covered]
    if absent:
        raise UnverifiedAnswer("bad-signature", f"the answer is not bound to this request: {', '.join(absent)}")


class HubClient:
    def __init__(
        self,
        hub_url: str,
        key: SigningKey,
        hub_key_id: str,
        hub_public_key: Ed25519PublicKey,
        session: aiohttp.ClientSession,
        retry: RetryPolicy | None = None,
        sealing_keys: Mapping[str, X25519PrivateKey] | None = None,
    ) -> None:
        self._hub_url = hub_url.rstrip("/")
        self._sealing_keys = dict(sealing_keys or {})  # the agency's X25519 private keys, by key id
        self._key = key
        self._hub_key_id = hub_key_id
        self._hub_public_key = hub_public_key
        self._session = session
        self._retry = retry or RetryPolicy()

    async def exchange(
        self,
        subject: str,
        category: str,
        purpose: str,
        params: dict[str, Any] | None = None,
        review: str | None = None,
        justification: str | None = None,
        *,
        emergency: dict[str, str] | None = None,
        raise_pending: bool = False,
    ) -> ExchangeResult:
        """Ask for a subject's data. A grey-zone 202 is returned (`result.pending`), or raised as
        `PendingReview` with `raise_pending=True`; every refusal is raised as its HubProblem subclass."""
        question = ExchangeQuestion(subject, category, purpose, dict(params or {}), justification)
        document: dict[str, Any] = {"subject": subject, "category": category, "purpose": purpose}
        if params:
            document["params"] = params
        if review is not None:
            document["review"] = review
        if justification is not None:
            document["justification"] = justification
        if emergency is not None:  # `{"reason": "..."}`: a break-the-glass access, where the rule allows it
            document["emergency"] = emergency
        status, answer = await self.call("POST", "/v1/exchanges", document)
        if status == 202 and raise_pending:
            raise PendingReview(status, answer)
        sealed = answer.get("sealed")
        return ExchangeResult(
            status,
            answer["exchange"],
            answer["zone"],
            answer.get("holder"),
            answer.get("data") if sealed is None else self.open(answer),
            answer.get("review"),
            question,
            sealed,
        )

    def open(self, answer: Mapping[str, Any]) -> dict[str, Any]:
        """The data of a sealed answer (an exchange's, or a batch's result line), once the holder's signature (with
        the key the hub vouches for), its exchange and its key check; UnverifiedAnswer (`bad-seal`) otherwise."""
        try:
            holder_key = load_public_key(str(answer["holder_key"]["public_key_pem"]))
            return open_sealed(answer["sealed"], str(answer["exchange"]), holder_key, self._sealing_keys)[1]
        except (EnvelopeInvalid, KeyError, TypeError, ValueError) as error:
            raise UnverifiedAnswer("bad-seal", f"the sealed answer cannot be accepted: {error}") from error

    async def repeat_with_review(self, pending: ExchangeResult, *, raise_pending: bool = False) -> ExchangeResult:
        """Repeat a grey-zone exchange naming its review: delivered once approved (200), still pending (202),
        or `ReviewRejected` / `ReviewUsed` / `ReviewExpired`. An approved review allows this repeat once."""
        if pending.review is None or pending.question is None:
            raise ValueError("only an exchange left pending by this client can be repeated with its review")
        question = pending.question
        return await self.exchange(
            question.subject,
            question.category,
            question.purpose,
            question.params,
            review=pending.review,
            justification=question.justification,
            raise_pending=raise_pending,
        )

    async def call(self, method: str, path: str, document: dict[str, Any] | None = None) -> tuple[int, dict[str, Any]]:
        """A signed call to the hub; the verified JSON answer, or the HubProblem subclass of a 4xx/5xx."""
        body = None if document is None else json.dumps(document, separators=(",", ":")).encode()
        attempt = 1
        while True:
            try:
                status, answer, headers = await self._send(method, path, body)
            except aiohttp.ClientConnectorError as error:  # no connection: nothing reached the hub
                if attempt >= self._retry.attempts:
                    raise
                wait = self._retry.backoff_s * 2 ** (attempt - 1)
                log.info("hub.unreachable", attempt=attempt, wait_s=wait, error=type(error).__name__)
            else:
                if status < 400:
                    return status, answer
                problem = problem_for(status, answer, headers)
                wait_or_none = retry_wait(self._retry, attempt, method, path, problem)
                if wait_or_none is None:
                    raise problem
                wait = wait_or_none
                log.info("hub.retry", attempt=attempt, wait_s=wait, problem=problem.name, exchange=problem.exchange)
            await asyncio.sleep(wait)
            attempt += 1

    async def import_references(self, path: Path) -> dict[str, Any]:
        """Send a file of this agency's references (NDJSON: one `{"kind": "relationship" | "holding", ...}` a
        line) as one bulk import, streamed; the import as accepted (`{"import": id, "status"}`). Follow it with
        `call("GET", f"/v1/directory/imports/{id}")`. Not retried: sending the file again changes nothing, though."""
        return await self._upload("/v1/directory/imports", path)

    async def batch(
        self, path: Path, results: Path, progress: Callable[[dict[str, Any]], object] | None = None, poll_s: float = 0.5
    ) -> dict[str, Any]:
        """Send a file of exchange requests (NDJSON: one `{"ref", "subject", "category", "purpose", ...}` a line) as
        one batch, streamed, and follow it (`follow_batch`) until it has ended and every answer is in `results`;
        the batch's last progress. Not retried: sending the file again would ask every line again."""
        accepted = await self.submit_batch(path)
        return await self.follow_batch(accepted["batch"], results, progress, poll_s)

    async def submit_batch(self, path: Path) -> dict[str, Any]:
        """Send a file of exchange requests as one batch, streamed; the batch as accepted (`{"batch": id}`)."""
        return await self._upload("/v1/batches", path)

    async def follow_batch(
        self,
        batch: str,
        results: Path,
        progress: Callable[[dict[str, Any]], object] | None = None,
        poll_s: float = 0.5,
        after: int = 0,
    ) -> dict[str, Any]:
        """Append a batch's answers after line `after` to `results` (NDJSON, one `{"line", "ref", "exchange",
        "status", ...}` a line, in line order) as they are ready, calling `progress` with each progress answer
        (`{"status", "lines", "done", "by_outcome", ...}`), until it has ended; its last progress. Each page asked
        tells the hub the answers before it were kept, and the hub forgets them: to resume after a stop, pass the
        last line written as `after`."""
        file = await asyncio.to_thread(results.open, "ab")
        try:
            while True:
                _, state = await self.call("GET", f"/v1/batches/{batch}")
                if progress is not None:
                    progress(state)
                page = await self.batch_results(batch, after)
                if page:
                    await asyncio.to_thread(file.write, b"".join(page))
                    after = json.loads(page[-1])["line"]
                elif state["status"] not in ("queued", "running"):
                    return state  # every answer written, and (asked past) forgotten by the hub
                else:
                    await asyncio.sleep(poll_s)
        finally:
            await asyncio.to_thread(file.close)

    async def batch_results(self, batch: str, after: int = 0) -> list[bytes]:
        """A page of a batch's answers after line `after` (the hub forgets those up to it), each an NDJSON line."""
        url = f"{self._hub_url}/v1/batches/{batch}/results?after={after}"
        status, body, headers = await self._verified("GET", url, sign_request("GET", url, None, self._key), None)
        if status >= 400:
            raise problem_for(status, _json_object(body, status, "GET", url), headers)
        return body.splitlines(keepends=True)

    async def _upload(self, path: str, file_path: Path) -> dict[str, Any]:
        """POST a file as a signed NDJSON body, streamed; the verified JSON answer, or its HubProblem."""
        digested = await asyncio.to_thread(digest_file, file_path)
        url = self._hub_url + path
        headers = sign_request("POST", url, digested, self._key, "application/x-ndjson")
        file = await asyncio.to_thread(file_path.open, "rb")
        try:
            status, answer, answer_headers = await self._signed("POST", url, headers, file)
        finally:
            await asyncio.to_thread(file.close)
        if status >= 400:
            raise problem_for(status, answer, answer_headers)
        return answer

    async def _send(self, method: str, path: str, body: bytes | None) -> tuple[int, dict[str, Any], Mapping[str, str]]:
        """One signed request (a fresh nonce each time) and its verified, bound answer."""
        url = self._hub_url + path
        return await self._signed(method, url, sign_request(method, url, body, self._key), body)

    async def _signed(
        self, method: str, url: str, headers: dict[str, str], body: bytes | BinaryIO | None
    ) -> tuple[int, dict[str, Any], Mapping[str, str]]:
        """A request already signed, sent, and its verified, bound JSON answer."""
        status, answer_body, answer_headers = await self._verified(method, url, headers, body)
        return status, _json_object(answer_body, status, method, url.removeprefix(self._hub_url)), answer_headers

    async def _verified(
        self, method: str, url: str, headers: dict[str, str], body: bytes | BinaryIO | None
    ) -> tuple[int, bytes, Mapping[str, str]]:
        """A request already signed, sent, and its answer once its signature verifies, bound to the request."""
        path = url.removeprefix(self._hub_url)
        # Sent exactly as signed: the hub rebuilds @target-uri from the raw path and query it receives.
        async with self._session.request(method, URL(url, encoded=True), data=body, headers=headers) as answer:
            answer_body = await answer.read()
            status, answer_headers = answer.status, CIMultiDict(answer.headers)
        bound = {"Content-Digest": headers["Content-Digest"]} if body is not None else {}
        try:
            covered = verify_response(
                Response(status, answer_headers, Request(method.upper(), url, bound)),
                answer_body,
                self._hub_key_id,
                self._hub_public_key,
            )
        except SignatureProblem as problem:
            raise UnverifiedAnswer(problem.kind, f"{status} answer to {method} {path}: {problem.detail}") from problem
        require_binding(covered, body is not None, status)
        return status, answer_body, answer_headers


def _json_object(body: bytes, status: int, method: str, path: str) -> dict[str, Any]:
    try:
        result = json.loads(body)
    except ValueError as error:
        raise UnverifiedAnswer("bad-answer", f"{status} answer to {method} {path} is not JSON") from error
    if not isinstance(result, dict):
        raise UnverifiedAnswer("bad-answer", f"{status} answer to {method} {path} is not a JSON object")
    return result
