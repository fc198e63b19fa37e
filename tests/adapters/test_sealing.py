"""Sealing and opening (adapters/sealing.py): what a holder seals its requester opens, and nothing else does; the
HPKE it uses is RFC 9180's, as a second implementation (OpenSSL's, through cryptography) opens it too."""

from __future__ import annotations

import json

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from adapters.sealing import Recipient, open_sealed, seal
from broker.base.envelopes import HPKE_INFO, EnvelopeInvalid, b64url, read_envelope, unb64url
from broker.base.signing import SigningKey, generate_key

RECORD = {"taxable_income": 35400, "year": 2025, "iban": "BE71 0961 2345 6769"}
HOLDER = SigningKey("tax-authority-2026", generate_key())


def sealed_to(key: X25519PrivateKey, fields: tuple[str, ...] | None = ("taxable_income", "year")) -> dict[str, str]:
    return seal(RECORD, fields, "exchange-1", Recipient("fb-seal", key.public_key()), HOLDER)


def test_the_requester_opens_what_the_holder_sealed_kept_to_the_fields() -> None:
    key = X25519PrivateKey.generate()
    envelope, data = open_sealed(sealed_to(key), "exchange-1", HOLDER.public_key, {"fb-seal": key})
    assert data == {"taxable_income": 35400, "year": 2025}
    assert (envelope.fields, envelope.recipient, envelope.key_id) == (
        ("taxable_income", "year"),
        "fb-seal",
        HOLDER.key_id,
    )
    assert open_sealed(sealed_to(key, None), "exchange-1", HOLDER.public_key, {"fb-seal": key})[1] == RECORD


def test_an_independent_hpke_implementation_opens_it() -> None:
    hpke = pytest.importorskip("cryptography.hazmat.primitives.hpke", reason="cryptography before 47 has no HPKE")
    from cryptography.hazmat.bindings._rust import openssl  # the public API has no `aad` yet; its binding does

    key = X25519PrivateKey.generate()
    envelope = read_envelope(sealed_to(key))
    suite = hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.CHACHA20_POLY1305)
    opened = openssl.hpke._decrypt_with_aad(suite, envelope.enc + envelope.ct, key, info=HPKE_INFO, aad=b"exchange-1")
    assert json.loads(opened) == {"taxable_income": 35400, "year": 2025}


def test_nothing_else_opens_it() -> None:
    key, other = X25519PrivateKey.generate(), X25519PrivateKey.generate()
    envelope = sealed_to(key)
    with pytest.raises(EnvelopeInvalid, match="not one of ours"):
        open_sealed(envelope, "exchange-1", HOLDER.public_key, {"other": other})
    with pytest.raises(EnvelopeInvalid, match="does not open"):
        open_sealed(envelope, "exchange-1", HOLDER.public_key, {"fb-seal": other})
    with pytest.raises(EnvelopeInvalid, match="not this one"):
        open_sealed(envelope, "exchange-2", HOLDER.public_key, {"fb-seal": key})
    with pytest.raises(EnvelopeInvalid, match="signature"):
        open_sealed(envelope, "exchange-1", generate_key().public_key(), {"fb-seal": key})
    payload = json.loads(unb64url(envelope["payload"]))
    payload["exchange"] = "exchange-2"  # an envelope re-addressed to another exchange: the signature no longer holds
    forged = {**envelope, "payload": b64url(json.dumps(payload).encode())}
    with pytest.raises(EnvelopeInvalid, match="signature"):
        open_sealed(forged, "exchange-2", HOLDER.public_key, {"fb-seal": key})


@pytest.mark.parametrize(
    "document",
    [
        None,
        {"protected": "x", "payload": "y"},
        {"protected": "x", "payload": "y", "signature": "z", "extra": "w"},
        {"protected": "!!", "payload": "e30", "signature": "AA"},
        {"protected": b64url(b'{"alg":"none","kid":"k"}'), "payload": "e30", "signature": "AA"},
        {"protected": b64url(b'{"alg":"EdDSA","kid":"k"}'), "payload": b64url(b"[]"), "signature": "AA"},
        {"protected": b64url(b'{"alg":"EdDSA","kid":"k"}'), "payload": "e30", "signature": "AA"},
    ],
)
def test_a_malformed_envelope_is_named_so(document: object) -> None:
    with pytest.raises(EnvelopeInvalid):
        read_envelope(document)
