"""A sealed answer's envelope (PROTOCOL.md, "Sealed answers"): what the holder sealed, signed by the holder, as a
JWS (RFC 7515, flattened JSON serialization, `EdDSA`): `{"protected", "payload", "signature"}`, its payload
`{"exchange", "fields", "recipient", "sealed": {"enc", "ct"}}`, each binary value base64url. Pure: built and checked
here; encrypted and opened by the agency SDK (adapters/sealing.py), which the hub never imports.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from broker.base.signing import SigningKey

HPKE_INFO = b"crossroads/v1 sealed"  # RFC 9180 `info`; the exchange id is the AEAD's additional data
ENC_BYTES = 32  # DHKEM(X25519, HKDF-SHA256)'s encapsulated key
TAG_BYTES = 16  # ChaCha20-Poly1305's tag
MAX_ENVELOPE = 64 * 1024
BASE64URL = re.compile(r"[A-Za-z0-9_-]*")


class EnvelopeInvalid(ValueError):
    """A sealed answer that is not what was asked for, or not what its holder signed; the message says which."""


@dataclass(frozen=True)
class Envelope:
    """A sealed answer as read, not yet verified: `key_id` names the holder's key that signed it."""

    key_id: str
    exchange: str
    fields: tuple[str, ...] | None
    recipient: str
    enc: bytes
    ct: bytes
    signing_input: bytes
    signature: bytes


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def unb64url(text: object) -> bytes:
    """Unpadded base64url, strictly."""
    if not isinstance(text, str) or not BASE64URL.fullmatch(text) or len(text) % 4 == 1:
        raise EnvelopeInvalid("a value is not unpadded base64url")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as error:
        raise EnvelopeInvalid("a value is not unpadded base64url") from error


def sign_envelope(
    key: SigningKey, exchange: str, fields: Sequence[str] | None, recipient: str, enc: bytes, ct: bytes
) -> dict[str, str]:
    """The holder's signed envelope of a sealed answer (HPKE's `enc` and ciphertext)."""
    protected = b64url(json.dumps({"alg": "EdDSA", "kid": key.key_id}, separators=(",", ":")).encode())
    sealed = {"enc": b64url(enc), "ct": b64url(ct)}
    content = {"exchange": exchange, "fields": None if fields is None else list(fields), "recipient": recipient}
    payload = b64url(json.dumps({**content, "sealed": sealed}, separators=(",", ":")).encode())
    signature = key.private_key.sign(f"{protected}.{payload}".encode())
    return {"protected": protected, "payload": payload, "signature": b64url(signature)}


def read_envelope(document: object) -> Envelope:
    """The envelope in `document` (a JWS in flattened JSON), well formed but not yet verified."""
    if not isinstance(document, dict) or set(document) != {"protected", "payload", "signature"}:
        raise EnvelopeInvalid("a sealed answer is a JWS in flattened JSON: exactly protected, payload, signature")
    protected, payload = document["protected"], document["payload"]
    if not all(isinstance(document[part], str) for part in document) or len(protected) + len(payload) > MAX_ENVELOPE:
        raise EnvelopeInvalid(f"a sealed answer's parts are base64url text, at most {MAX_ENVELOPE} characters")
    header, content = _json(unb64url(protected)), _json(unb64url(payload))
    if header.get("alg") != "EdDSA" or not isinstance(header.get("kid"), str) or set(header) != {"alg", "kid"}:
        raise EnvelopeInvalid('a sealed answer\'s protected header is {"alg": "EdDSA", "kid": <the holder\'s key>}')
    sealed, fields = content.get("sealed"), content.get("fields")
    if (
        set(content) != {"exchange", "fields", "recipient", "sealed"}
        or not isinstance(content["exchange"], str)
        or not isinstance(content["recipient"], str)
        or not (fields is None or (isinstance(fields, list) and all(isinstance(name, str) for name in fields)))
        or not isinstance(sealed, dict)
        or set(sealed) != {"enc", "ct"}
    ):
        raise EnvelopeInvalid(
            'a sealed answer\'s payload is {"exchange", "fields", "recipient", "sealed": {"enc", "ct"}}'
        )
    enc, ct = unb64url(sealed["enc"]), unb64url(sealed["ct"])
    if len(enc) != ENC_BYTES or len(ct) < TAG_BYTES:
        raise EnvelopeInvalid("a sealed answer's enc or ct has the wrong length for X25519 and ChaCha20-Poly1305")
    return Envelope(
        header["kid"],
        content["exchange"],
        None if fields is None else tuple(fields),
        content["recipient"],
        enc,
        ct,
        f"{protected}.{payload}".encode(),
        unb64url(document["signature"]),
    )


def verify_envelope(envelope: Envelope, public_key: Ed25519PublicKey) -> None:
    """The holder's signature over the envelope, with the key its `key_id` names."""
    try:
        public_key.verify(envelope.signature, envelope.signing_input)
    except InvalidSignature as error:
        raise EnvelopeInvalid(f"the sealed answer's signature does not verify with key {envelope.key_id!r}") from error


def check_envelope(envelope: Envelope, exchange: str, fields: Sequence[str] | None, recipient: str) -> None:
    """The envelope answers this exchange, with exactly the fields asked for, sealed to the key asked for."""
    if envelope.exchange != exchange:
        raise EnvelopeInvalid(f"the sealed answer is for exchange {envelope.exchange[:64]!r}, not this one")
    if envelope.fields != (None if fields is None else tuple(fields)):
        raise EnvelopeInvalid("the sealed answer's fields are not exactly the fields asked for")
    if envelope.recipient != recipient:
        raise EnvelopeInvalid(f"the sealed answer is sealed to key {envelope.recipient[:128]!r}, not {recipient!r}")


def _json(data: bytes) -> dict[str, Any]:
    try:
        document = json.loads(data)
    except ValueError as error:
        raise EnvelopeInvalid("a sealed answer's header or payload is not JSON") from error
    if not isinstance(document, dict):
        raise EnvelopeInvalid("a sealed answer's header and payload are JSON objects")
    return document
