"""Checks the interop client's RFC 9421 / RFC 9530 code against the RFCs' own test data.

This file owns the proof that `protocol_client` is a faithful, independent
implementation: it reproduces RFC 9421 Appendix B.2.6 (Ed25519, deterministic)
byte for byte, and round-trips the request and response shapes PROTOCOL.md
uses, including response signatures bound to their request with `;req`.
"""

from __future__ import annotations

import base64
import time

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
    load_pem_private_key,
    load_pem_public_key,
)

from .protocol_client import (
    Component,
    Params,
    RequestView,
    ResponseView,
    SignatureError,
    content_digest,
    create_signature,
    parse_dictionary,
    sign_request,
    signature_base,
    verify_content_digest,
    verify_response,
    verify_signature,
)

# RFC 9421 Appendix B.1.4, "Example Ed25519 Test Key" (test-key-ed25519).
RFC_PUBLIC_PEM = b"""-----BEGIN PUBLIC KEY-----
MCowBQYDK2VwAyEAJrQLj5P/89iXES9+vFgrIy29clF9CC/oPPsw3c5D0bs=
-----END PUBLIC KEY-----
"""
RFC_PRIVATE_PEM = b"""-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEIJ+DYvh6SEqVTm50DFtMDoQikTmiCqirVv9mWG9qfSnF
-----END PRIVATE KEY-----
"""
# The same key as a JWK in B.1.4: the raw private (d) and public (x) halves.
RFC_JWK_D = "n4Ni-HpISpVObnQMW0wOhCKROaIKqKtW_2ZYb2p9KcU"
RFC_JWK_X = "JrQLj5P_89iXES9-vFgrIy29clF9CC_oPPsw3c5D0bs"

# RFC 9421 Appendix B.2, the `test-request` message.
RFC_REQUEST_BODY = b'{"hello": "world"}'
RFC_REQUEST_HEADERS = {
    "Host": "example.com",
    "Date": "Tue, 20 Apr 2021 02:07:55 GMT",
    "Content-Type": "application/json",
    "Content-Digest": (
        "sha-512=:WZDPaVn/7XgHaAy8pmojAkGWoRx2UFChF41A2svX+TaPm+AbwAgBWnrIiYllu7BNNyealdVLvRwEmTHWXvJwew==:"
    ),
    "Content-Length": "18",
}
RFC_REQUEST = RequestView("POST", "https://example.com/foo?param=Value&Pet=dog", RFC_REQUEST_HEADERS)

# RFC 9421 Appendix B.2.6, "Signing a Request Using ed25519" (RFC 8792 line
# folding undone).
B26_COMPONENTS = [
    Component(name) for name in ("date", "@method", "@path", "@authority", "content-type", "content-length")
]
B26_PARAMS: Params = {"created": 1618884473, "keyid": "test-key-ed25519"}
B26_SIGNATURE_BASE = (
    '"date": Tue, 20 Apr 2021 02:07:55 GMT\n'
    '"@method": POST\n'
    '"@path": /foo\n'
    '"@authority": example.com\n'
    '"content-type": application/json\n'
    '"content-length": 18\n'
    '"@signature-params": ("date" "@method" "@path" "@authority" "content-type" "content-length")'
    ';created=1618884473;keyid="test-key-ed25519"'
)
B26_SIGNATURE_INPUT = (
    'sig-b26=("date" "@method" "@path" "@authority" "content-type" "content-length")'
    ';created=1618884473;keyid="test-key-ed25519"'
)
B26_SIGNATURE = "sig-b26=:wqcAqbmYJ2ji2glfAMaRy4gruYYnx2nEFN2HN6jrnDnQCK1u02Gb04v9EDgwUPiu4A0w6vuQv5lIp5WPpBKRCw==:"

HUB_URL = "http://127.0.0.1:8443/v1/exchanges?trace=1"
EXCHANGE_BODY = b'{"subject": "85073003328", "category": "income", "purpose": "benefit-eligibility"}'


@pytest.fixture(scope="module")
def rfc_private_key() -> Ed25519PrivateKey:
    key = load_pem_private_key(RFC_PRIVATE_PEM, password=None)
    assert isinstance(key, Ed25519PrivateKey)
    return key


@pytest.fixture(scope="module")
def rfc_public_key() -> Ed25519PublicKey:
    key = load_pem_public_key(RFC_PUBLIC_PEM)
    assert isinstance(key, Ed25519PublicKey)
    return key


def _unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def test_rfc_key_encodings_describe_one_key_pair(
    rfc_private_key: Ed25519PrivateKey, rfc_public_key: Ed25519PublicKey
) -> None:
    # Guards the transcription of B.1.4: PEM and JWK forms must agree.
    raw_private = rfc_private_key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    raw_public = rfc_public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)
    assert raw_private == _unb64url(RFC_JWK_D)
    assert raw_public == _unb64url(RFC_JWK_X)
    assert rfc_private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw) == raw_public


def test_content_digest_matches_the_rfc_test_request() -> None:
    assert content_digest(RFC_REQUEST_BODY, "sha-512") == RFC_REQUEST_HEADERS["Content-Digest"]
    # RFC 9530's own example digest of the same body.
    assert content_digest(RFC_REQUEST_BODY) == "sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:"
    verify_content_digest(RFC_REQUEST_HEADERS, RFC_REQUEST_BODY)
    with pytest.raises(SignatureError, match="does not match"):
        verify_content_digest(RFC_REQUEST_HEADERS, b'{"hello": "World"}')


def test_b26_signature_base_is_byte_for_byte() -> None:
    assert signature_base(B26_COMPONENTS, B26_PARAMS, RFC_REQUEST) == B26_SIGNATURE_BASE.encode("ascii")


def test_b26_signature_fields_are_byte_for_byte(rfc_private_key: Ed25519PrivateKey) -> None:
    fields = create_signature(B26_COMPONENTS, B26_PARAMS, rfc_private_key, RFC_REQUEST, label="sig-b26")
    assert fields == {"Signature-Input": B26_SIGNATURE_INPUT, "Signature": B26_SIGNATURE}


def test_b26_rfc_fields_parse_and_verify(rfc_public_key: Ed25519PublicKey) -> None:
    signed = RFC_REQUEST_HEADERS | {"Signature-Input": B26_SIGNATURE_INPUT, "Signature": B26_SIGNATURE}
    verified = verify_signature(signed, rfc_public_key, RequestView("POST", RFC_REQUEST.url, signed))
    assert list(verified.components) == B26_COMPONENTS
    assert verified.params == B26_PARAMS


def test_b26_signature_fails_on_a_changed_covered_field(rfc_public_key: Ed25519PublicKey) -> None:
    signed = RFC_REQUEST_HEADERS | {
        "Content-Length": "19",
        "Signature-Input": B26_SIGNATURE_INPUT,
        "Signature": B26_SIGNATURE,
    }
    with pytest.raises(SignatureError, match="does not verify"):
        verify_signature(signed, rfc_public_key, RequestView("POST", RFC_REQUEST.url, signed))


def test_parser_reads_parameters_escapes_and_several_labels() -> None:
    parsed = parse_dictionary(
        'sig1=("@method";req "x-a");created=-5;keyid="a\\"b\\\\c";flag ,  sig2=:AAE=:;alg="ed25519", ok=?1'
    )
    assert parsed == {
        "sig1": ([("@method", {"req": True}), ("x-a", {})], {"created": -5, "keyid": 'a"b\\c', "flag": True}),
        "sig2": (b"\x00\x01", {"alg": "ed25519"}),
        "ok": (True, {}),
    }
    for malformed in ('sig1=("a"', "sig1=:AA", "sig1=1.5", "sig1=token", "Sig1=1", "sig1=1,"):
        with pytest.raises(SignatureError):
            parse_dictionary(malformed)


def test_signed_request_with_body_round_trips(
    rfc_private_key: Ed25519PrivateKey, rfc_public_key: Ed25519PublicKey
) -> None:
    headers = sign_request(
        "POST", HUB_URL, EXCHANGE_BODY, "agency-key", rfc_private_key, created=1700000000, nonce="n-1"
    )
    assert headers["Content-Type"] == "application/json"
    assert headers["Content-Digest"] == content_digest(EXCHANGE_BODY)
    assert headers["Signature-Input"] == (
        'sig1=("@method" "@target-uri" "content-digest" "content-type")'
        ';created=1700000000;keyid="agency-key";nonce="n-1";alg="ed25519"'
    )
    verified = verify_signature(headers, rfc_public_key, RequestView("POST", HUB_URL, headers))
    assert [component.name for component in verified.components] == [
        "@method",
        "@target-uri",
        "content-digest",
        "content-type",
    ]
    with pytest.raises(SignatureError, match="does not verify"):
        verify_signature(headers, rfc_public_key, RequestView("POST", HUB_URL.replace("trace=1", "trace=2"), headers))


def test_signed_request_without_body_covers_method_and_target() -> None:
    key = Ed25519PrivateKey.generate()
    headers = sign_request("GET", HUB_URL, None, "agency-key", key)
    assert set(headers) == {"Signature-Input", "Signature"}
    verified = verify_signature(headers, key.public_key(), RequestView("GET", HUB_URL, headers))
    assert [component.name for component in verified.components] == ["@method", "@target-uri"]
    assert list(verified.params) == ["created", "keyid", "nonce", "alg"]
    assert abs(int(verified.params["created"]) - time.time()) < 5


def test_each_signed_request_gets_a_fresh_nonce() -> None:
    key = Ed25519PrivateKey.generate()
    nonces = {
        parse_dictionary(sign_request("POST", HUB_URL, b"{}", "k", key)["Signature-Input"])["sig1"][1]["nonce"]
        for _ in range(20)
    }
    assert len(nonces) == 20


RESPONSE_BODY = b'{"exchange": "x-1", "zone": "white", "holder": "tax", "data": {"taxable_income": 1}}'
BOUND_RESPONSE_COMPONENTS = [
    Component("@status"),
    Component("content-digest"),
    Component("content-type"),
    Component("@method", req=True),
    Component("@target-uri", req=True),
    Component("content-digest", req=True),
]


def _signed_exchange(hub_key: Ed25519PrivateKey, created: int | None = None) -> tuple[dict[str, str], dict[str, str]]:
    """A signed request and the hub-style signed response bound to it."""
    agency_key = Ed25519PrivateKey.generate()
    request_headers = sign_request("POST", HUB_URL, EXCHANGE_BODY, "agency-key", agency_key)
    response_headers = {"Content-Type": "application/json", "Content-Digest": content_digest(RESPONSE_BODY)}
    params: Params = {
        "created": int(time.time()) if created is None else created,
        "keyid": "hub-key",
        "nonce": "r-1",
        "alg": "ed25519",
    }
    response_headers |= create_signature(
        BOUND_RESPONSE_COMPONENTS,
        params,
        hub_key,
        RequestView("POST", HUB_URL, request_headers),
        ResponseView(200, response_headers),
    )
    return request_headers, response_headers


def test_response_bound_with_req_components_round_trips() -> None:
    hub_key = Ed25519PrivateKey.generate()
    request_headers, response_headers = _signed_exchange(hub_key)
    base = signature_base(
        BOUND_RESPONSE_COMPONENTS,
        {"created": 1, "keyid": "hub-key"},
        RequestView("POST", HUB_URL, request_headers),
        ResponseView(200, response_headers),
    ).decode("ascii")
    assert base.splitlines()[:6] == [
        '"@status": 200',
        f'"content-digest": {content_digest(RESPONSE_BODY)}',
        '"content-type": application/json',
        '"@method";req: POST',
        f'"@target-uri";req: {HUB_URL}',
        f'"content-digest";req: {content_digest(EXCHANGE_BODY)}',
    ]
    covered = verify_response(
        200,
        response_headers,
        RESPONSE_BODY,
        "POST",
        HUB_URL,
        request_headers,
        hub_key.public_key(),
        key_id="hub-key",
    )
    assert covered == [
        '"@status"',
        '"content-digest"',
        '"content-type"',
        '"@method";req',
        '"@target-uri";req',
        '"content-digest";req',
    ]


def test_response_is_rejected_for_another_request() -> None:
    hub_key = Ed25519PrivateKey.generate()
    request_headers, response_headers = _signed_exchange(hub_key)
    other_request_headers = request_headers | {"Content-Digest": content_digest(b"{}")}
    with pytest.raises(SignatureError, match="does not verify"):
        verify_response(
            200,
            response_headers,
            RESPONSE_BODY,
            "POST",
            HUB_URL + "&x=1",
            request_headers,
            hub_key.public_key(),
        )
    with pytest.raises(SignatureError, match="does not verify"):
        verify_response(
            200, response_headers, RESPONSE_BODY, "POST", HUB_URL, other_request_headers, hub_key.public_key()
        )


@pytest.mark.parametrize(
    ("status", "body", "key_id", "message"),
    [
        (200, RESPONSE_BODY + b" ", None, "Content-Digest sha-256 does not match"),
        (201, RESPONSE_BODY, None, "does not verify"),
        (200, RESPONSE_BODY, "another-hub-key", "expected 'another-hub-key'"),
    ],
)
def test_response_tampering_is_rejected(status: int, body: bytes, key_id: str | None, message: str) -> None:
    hub_key = Ed25519PrivateKey.generate()
    request_headers, response_headers = _signed_exchange(hub_key)
    with pytest.raises(SignatureError, match=message):
        verify_response(
            status,
            response_headers,
            body,
            "POST",
            HUB_URL,
            request_headers,
            hub_key.public_key(),
            key_id=key_id,
        )


def test_response_from_another_key_or_too_old_is_rejected() -> None:
    hub_key = Ed25519PrivateKey.generate()
    request_headers, response_headers = _signed_exchange(hub_key)
    impostor = Ed25519PrivateKey.generate().public_key()
    with pytest.raises(SignatureError, match="does not verify"):
        verify_response(200, response_headers, RESPONSE_BODY, "POST", HUB_URL, request_headers, impostor)
    request_headers, stale_headers = _signed_exchange(hub_key, created=int(time.time()) - 3600)
    with pytest.raises(SignatureError, match="more than 300 s"):
        verify_response(200, stale_headers, RESPONSE_BODY, "POST", HUB_URL, request_headers, hub_key.public_key())


def test_response_must_cover_status_digest_and_type() -> None:
    hub_key = Ed25519PrivateKey.generate()
    request_headers = sign_request("POST", HUB_URL, EXCHANGE_BODY, "agency-key", hub_key)
    response_headers = {"Content-Type": "application/json", "Content-Digest": content_digest(RESPONSE_BODY)}
    response_headers |= create_signature(
        [Component("content-digest"), Component("@method", req=True)],
        {"created": int(time.time()), "keyid": "hub-key"},
        hub_key,
        RequestView("POST", HUB_URL, request_headers),
        ResponseView(200, response_headers),
    )
    with pytest.raises(SignatureError, match=r"does not cover \['@status', 'content-type'\]"):
        verify_response(200, response_headers, RESPONSE_BODY, "POST", HUB_URL, request_headers, hub_key.public_key())
