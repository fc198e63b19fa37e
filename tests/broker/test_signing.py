"""Signing as PROTOCOL.md says: requests and responses round-trip, and every tampering is caught."""

from __future__ import annotations

import pytest

from broker.signing import (
    Request,
    Response,
    SignatureProblem,
    SigningKey,
    check_created,
    generate_key,
    read_signature_input,
    sign_request,
    sign_response,
    verify_request,
    verify_response,
)

KEY = SigningKey("agency-2026", generate_key())
URL = "https://hub.example/v1/exchanges"
BODY = b'{"subject":"85073003328"}'


def verify(method: str, url: str, headers: dict[str, str], body: bytes, key: SigningKey = KEY) -> None:
    verify_request(Request(method, url, headers), body, read_signature_input(headers), key.public_key)


def test_request_round_trip_covers_protocol_components() -> None:
    headers = sign_request("POST", URL, BODY, KEY)
    signature = read_signature_input(headers)
    assert signature.covered == ('"@method"', '"@target-uri"', '"content-digest"', '"content-type"')
    assert signature.key_id == "agency-2026" and signature.nonce
    verify("POST", URL, headers, BODY)
    assert read_signature_input(sign_request("GET", URL, None, KEY)).covered == ('"@method"', '"@target-uri"')


@pytest.mark.parametrize(
    ("method", "url", "body", "kind"),
    [
        ("PUT", URL, BODY, "bad-signature"),
        ("POST", URL + "?x=1", BODY, "bad-signature"),
        ("POST", URL, BODY + b" ", "bad-digest"),
    ],
)
def test_tampering_is_caught(method: str, url: str, body: bytes, kind: str) -> None:
    headers = sign_request("POST", URL, BODY, KEY)
    with pytest.raises(SignatureProblem) as caught:
        verify(method, url, headers, body)
    assert caught.value.kind == kind


def test_another_key_does_not_verify() -> None:
    with pytest.raises(SignatureProblem):
        verify("POST", URL, sign_request("POST", URL, BODY, KEY), BODY, SigningKey("agency-2026", generate_key()))


def test_missing_nonce_or_two_signatures_are_refused() -> None:
    headers = sign_request("POST", URL, BODY, KEY)
    no_nonce = {
        **headers,
        "Signature-Input": headers["Signature-Input"].split(";nonce=")[0] + ';alg="ed25519"',
    }
    with pytest.raises(SignatureProblem, match="nonce"):
        read_signature_input(no_nonce)
    label, value = headers["Signature"].split("=", 1)
    doubled = {
        **headers,
        "Signature": f"{label}={value}, b={value}",
        "Signature-Input": headers["Signature-Input"] + ", b" + headers["Signature-Input"][len(label) :],
    }
    with pytest.raises(SignatureProblem, match="exactly one"):
        read_signature_input(doubled)


def test_created_window() -> None:
    check_created(1000, 1300)
    check_created(1300, 1000)
    with pytest.raises(SignatureProblem):
        check_created(1000, 1301)


def test_response_binding() -> None:
    request_headers = sign_request("POST", URL, BODY, KEY)
    bound = Request("POST", URL, {"Content-Digest": request_headers["Content-Digest"]})
    body = b'{"ok":true}'
    headers = sign_response(200, {"Content-Type": "application/json"}, body, KEY, bound)
    covered = verify_response(Response(200, headers, bound), body, KEY.key_id, KEY.public_key)
    assert '"content-digest";req' in covered
    other = Request("POST", URL.replace("exchanges", "consents"), bound.headers)
    with pytest.raises(SignatureProblem):
        verify_response(Response(200, headers, other), body, KEY.key_id, KEY.public_key)
    with pytest.raises(SignatureProblem):
        verify_response(Response(201, headers, bound), body, KEY.key_id, KEY.public_key)
