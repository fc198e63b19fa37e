"""Sealed answers on the agencies' side (PROTOCOL.md, "Sealed answers"): the holder keeps only the fields the hub's
forward allows, encrypts them to the requester's X25519 key with HPKE (RFC 9180 base mode, DHKEM(X25519,
HKDF-SHA256), HKDF-SHA256, ChaCha20-Poly1305, through pyhpke) and signs the envelope (broker/base/envelopes.py);
the requester checks the envelope and opens it with its private key. The hub imports none of this.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
    load_pem_private_key,
)
from pyhpke import AEADId, CipherSuite, KDFId, KEMId, KEMKey
from pyhpke.exceptions import PyHPKEError

from broker.base.envelopes import (
    HPKE_INFO,
    Envelope,
    EnvelopeInvalid,
    read_envelope,
    sign_envelope,
    unb64url,
    verify_envelope,
)
from broker.base.keyfiles import write_new_key_file
from broker.base.signing import SigningKey

SUITE = CipherSuite.new(KEMId.DHKEM_X25519_HKDF_SHA256, KDFId.HKDF_SHA256, AEADId.CHACHA20_POLY1305)


@dataclass(frozen=True)
class Recipient:
    """The requester's key a sealed answer is encrypted to, as the hub's forward names it."""

    key_id: str
    public_key: X25519PublicKey

    @classmethod
    def from_forward(cls, document: object) -> Recipient:
        """`{"key_id", "public_key"}` (the raw key, base64url) of the hub's forward, or ValueError."""
        if not isinstance(document, dict) or not isinstance(document.get("key_id"), str):
            raise ValueError('recipient is {"key_id", "public_key"}')
        try:
            return cls(document["key_id"], X25519PublicKey.from_public_bytes(unb64url(document.get("public_key"))))
        except (EnvelopeInvalid, ValueError) as error:
            raise ValueError("recipient's public_key is a raw X25519 key, base64url") from error


def seal(
    data: Mapping[str, Any], fields: Sequence[str] | None, exchange: str, recipient: Recipient, key: SigningKey
) -> dict[str, str]:
    """The holder's signed envelope of `data` kept to `fields` (None: all of it), sealed to `recipient`."""
    kept = dict(data) if fields is None else {name: value for name, value in data.items() if name in fields}
    enc, sender = SUITE.create_sender_context(KEMKey.from_pyca_cryptography_key(recipient.public_key), HPKE_INFO)
    ct = sender.seal(json.dumps(kept, separators=(",", ":")).encode(), exchange.encode())
    return sign_envelope(key, exchange, fields, recipient.key_id, enc, ct)


def open_sealed(
    document: object,
    exchange: str,
    holder_key: Ed25519PublicKey,
    keys: Mapping[str, X25519PrivateKey],
) -> tuple[Envelope, dict[str, Any]]:
    """The envelope of a sealed answer to `exchange` and the data it seals, once the holder's signature verifies,
    it names this exchange and one of `keys` (the requester's, by key id), opens, and holds no field beyond its
    list; EnvelopeInvalid says which check failed."""
    envelope = read_envelope(document)
    verify_envelope(envelope, holder_key)
    private_key = keys.get(envelope.recipient)
    if private_key is None:
        raise EnvelopeInvalid(f"the sealed answer is sealed to key {envelope.recipient[:128]!r}, not one of ours")
    if envelope.exchange != exchange:
        raise EnvelopeInvalid(f"the sealed answer is for exchange {envelope.exchange[:64]!r}, not this one")
    try:
        opening = SUITE.create_recipient_context(
            envelope.enc, KEMKey.from_pyca_cryptography_key(private_key), HPKE_INFO
        )
        data = json.loads(opening.open(envelope.ct, exchange.encode()))
    except (PyHPKEError, ValueError) as error:
        raise EnvelopeInvalid("the sealed answer does not open with our key: tampered, or sealed to another") from error
    if not isinstance(data, dict):
        raise EnvelopeInvalid("a sealed answer seals a JSON object")
    if envelope.fields is not None and set(data) - set(envelope.fields):
        raise EnvelopeInvalid("the sealed answer holds fields beyond its list")
    return envelope, data


def sealing_public_pem(key: X25519PrivateKey) -> str:
    """The public half of a sealing key, as the PEM an administrator registers (`use` `seal`)."""
    return key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo).decode()


def load_or_create_sealing_key(path: Path) -> X25519PrivateKey:
    """The X25519 private key at `path` (PKCS#8 PEM), created readable by its owner only when absent."""
    if path.exists():
        return load_sealing_key(path)
    key = X25519PrivateKey.generate()
    write_new_key_file(path, key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
    return key


def load_sealing_key(path: Path) -> X25519PrivateKey:
    key = load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, X25519PrivateKey):
        raise ValueError(f"{path} is not an X25519 private key")
    return key
