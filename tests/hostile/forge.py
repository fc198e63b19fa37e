"""Requests as an attacker writes them: RFC 9421 signatures with every parameter under the caller's control
(key id, signing key, `created`, nonce, covered components), and a raw HTTP/1.1 client that sends the request
line, headers and body byte for byte (no client library normalising paths or adding headers).
"""

from __future__ import annotations

import asyncio
import json
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from http_message_signatures import HTTPMessageSigner, MappingKeyResolver, algorithms
from multidict import CIMultiDict

from broker.base.signing import BODY_COMPONENTS, REQUEST_COMPONENTS, Request, content_digest

Headers = list[tuple[str, str]]


class _UncheckedDigest:
    """Leaves Content-Digest as the attacker wrote it (the library would refuse md5 or a wrong length)."""

    @staticmethod
    def prepare(headers: object, body: object, use_existing_digest: bool = False) -> None:
        return None


class _Signer(HTTPMessageSigner):
    content_digest_class = _UncheckedDigest


@dataclass(frozen=True)
class Signing:
    """How a request is signed; every field left as is gives a valid signature by `key_id`'s owner."""

    created: datetime | None = None  # default: now
    expires: datetime | None = None  # default: none
    nonce: str | None = field(default_factory=lambda: secrets.token_urlsafe(16))
    covered: tuple[str, ...] | None = None  # default: what PROTOCOL.md requires
    label: str = "sig1"
    include_alg: bool = True


def sign(
    method: str,
    url: str,
    body: bytes | None,
    key_id: str,
    private_key: Ed25519PrivateKey,
    signing: Signing,
    content_type: str | None = "application/json",
    digest: str | None = None,
) -> Headers:
    """Content-Type, Content-Digest (when there is a body: of the body, unless `digest` gives its value) and
    the signature headers over `url`."""
    headers: dict[str, str] = {}
    if body is not None:
        if content_type is not None:
            headers["Content-Type"] = content_type
        headers["Content-Digest"] = digest or content_digest(body)
    covered = signing.covered or (BODY_COMPONENTS if body is not None else REQUEST_COMPONENTS)
    signer = _Signer(
        signature_algorithm=algorithms.ED25519,
        key_resolver=MappingKeyResolver(public_keys={}, private_keys={key_id: private_key}),
    )
    signer.sign(
        Request(method, url, headers),
        key_id=key_id,
        nonce=signing.nonce,
        label=signing.label,
        include_alg=signing.include_alg,
        covered_component_ids=covered,
        created=signing.created or datetime.now(UTC),
        expires=signing.expires,
    )
    return list(headers.items())


@dataclass(frozen=True)
class Answer:
    status: int
    headers: CIMultiDict[str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def problem(self) -> str | None:
        """The last segment of the problem type, if the answer is a problem document."""
        if not self.headers.get("Content-Type", "").startswith("application/problem+json"):
            return None
        return str(self.json()["type"]).rsplit("/", 1)[-1]


async def send(
    port: int, method: str, target: str, headers: Headers, body: bytes | None, source: str = "127.0.0.1"
) -> Answer:
    """One request on its own connection from `source` (a loopback address), exactly as given (plus Host,
    Content-Length, Connection: close)."""
    lines = [f"{method} {target} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Connection: close"]
    lines += [f"{name}: {value}" for name, value in headers]
    if body is not None:
        lines.append(f"Content-Length: {len(body)}")
    return await send_raw(port, ("\r\n".join(lines) + "\r\n\r\n").encode() + (body or b""), source)


async def send_raw(port: int, raw: bytes, source: str = "127.0.0.1") -> Answer:
    """Bytes on their own connection from `source`, and the answer read until the hub closes it."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port, local_addr=(source, 0))
    try:
        writer.write(raw)
        await writer.drain()
        answer = await reader.read()
    finally:
        writer.close()
        await writer.wait_closed()
    return parse_answer(answer)


def parse_answer(raw: bytes) -> Answer:
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers: CIMultiDict[str] = CIMultiDict()
    for line in header_lines:
        name, _, value = line.partition(":")
        headers.add(name.strip(), value.strip())
    return Answer(int(status_line.split(" ")[1]), headers, body)
