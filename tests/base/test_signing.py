"""Signing as PROTOCOL.md says: requests and responses round-trip, and every tampering is caught; the signature
bases this module builds itself agree with http_message_signatures on every message, tampered or not."""

from __future__ import annotations

from datetime import timedelta
from typing import cast

import pytest
from http_message_signatures import (
    HTTPMessageSigner,
    HTTPMessageVerifier,
    InvalidSignature,
    MappingKeyResolver,
    algorithms,
)
from http_message_signatures.exceptions import HTTPMessageSignaturesException
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from multidict import CIMultiDict

from broker.base.signing import (
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
    verify_signature,
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


# --- the direct signature bases against http_message_signatures ------------------------------------------

LIBRARY_KEY = SigningKey("library-2026", generate_key())
METHODS = st.sampled_from(["GET", "POST", "DELETE", "post"])
URLS = st.sampled_from(
    [
        "http://127.0.0.1:8080/v1/exchanges",
        "https://hub.example/v1/audit?subject=85073003328&since=2026-01-01T00%3A00%3A00Z",
        "https://hub.example/v1/x?",
        "https://Hub.Example/v1/exchanges",  # not plain: the library's URL handling decides
        "http://[::1]:8080/v1/exchanges",
        "http://hub.example",
        "http://hub.example/a%zz",
    ]
)
FIELD_VALUES = st.text(st.sampled_from('ab \t"\\,;=:é\x01'), max_size=8)
REQUEST_COMPONENTS = st.lists(
    st.sampled_from(['"@method"', '"@target-uri"', '"@authority"', '"@path"', '"content-type"', '"x-extra"']),
    min_size=1,
    max_size=5,
    unique=True,
)
RESPONSE_COMPONENTS = st.lists(
    st.sampled_from(
        ['"@status"', '"content-type"', '"x-extra"', '"@method";req', '"@target-uri";req', '"x-extra";req', '"@path"']
    ),
    min_size=1,
    max_size=5,
    unique=True,
)


def _headers(content_type: str, extra: list[str]) -> CIMultiDict[str]:
    headers: CIMultiDict[str] = CIMultiDict({"Content-Type": content_type})
    for value in extra:
        headers.add("X-Extra", value)
    return headers


def _library_signs(message: Request | Response, covered: list[str]) -> bool:
    """Sign with the library, as an agency's off-the-shelf RFC 9421 code would; False if it refuses."""
    signer = HTTPMessageSigner(
        signature_algorithm=algorithms.ED25519,
        key_resolver=MappingKeyResolver(public_keys={}, private_keys={LIBRARY_KEY.key_id: LIBRARY_KEY.private_key}),
    )
    try:
        signer.sign(message, key_id=LIBRARY_KEY.key_id, nonce="n-1", label="sig1", covered_component_ids=covered)
    except HTTPMessageSignaturesException:
        return False
    return True


def _verdicts(message: Request | Response) -> tuple[bool, bool]:
    """Whether this module and the library each accept the message's signature."""
    verifier = HTTPMessageVerifier(
        signature_algorithm=algorithms.ED25519,
        key_resolver=MappingKeyResolver(public_keys={LIBRARY_KEY.key_id: LIBRARY_KEY.public_key}, private_keys={}),
    )
    verifier.max_clock_skew = timedelta(seconds=300)
    try:
        verifier.verify(message, max_age=timedelta(seconds=300))
        library = True
    except (InvalidSignature, HTTPMessageSignaturesException):
        library = False
    try:
        verify_signature(message, read_signature_input(message.headers, require_nonce=False), LIBRARY_KEY.public_key)
        ours = True
    except SignatureProblem:
        ours = False
    return ours, library


@settings(max_examples=300, deadline=None)
@given(
    METHODS,
    URLS,
    REQUEST_COMPONENTS,
    FIELD_VALUES,
    st.lists(FIELD_VALUES, max_size=2),
    st.sampled_from(["none", "method", "url", "content-type", "x-extra"]),
)
def test_request_verdicts_agree_with_the_library(
    method: str, url: str, covered: list[str], content_type: str, extra: list[str], tamper: str
) -> None:
    request = Request(method, url, _headers(content_type, extra))
    assume(_library_signs(request, covered))
    if tamper == "method":
        request.method = "PUT"
    elif tamper == "url":
        request.url = url.replace("/v1/", "/v2/")
    elif tamper in ("content-type", "x-extra"):
        cast(CIMultiDict[str], request.headers)[tamper] = "changed"
    ours, library = _verdicts(request)
    assert ours == library


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from([200, 404, 503]),
    URLS,
    RESPONSE_COMPONENTS,
    FIELD_VALUES,
    st.lists(FIELD_VALUES, max_size=2),
    st.sampled_from(["none", "status", "request", "x-extra"]),
)
def test_response_verdicts_agree_with_the_library(
    status: int, url: str, covered: list[str], content_type: str, extra: list[str], tamper: str
) -> None:
    bound = Request("POST", url, _headers("application/json", extra))
    response = Response(status, _headers(content_type, extra), bound)
    assume(_library_signs(response, covered))
    if tamper == "status":
        response.status_code = 201
    elif tamper == "request":
        response.request = Request("POST", url + "x", bound.headers)
    elif tamper == "x-extra":
        cast(CIMultiDict[str], bound.headers)["x-extra"] = "changed"
    ours, library = _verdicts(response)
    assert ours == library


@settings(max_examples=100, deadline=None)
@given(
    st.sampled_from(["GET", "POST"]),
    URLS.filter(lambda url: "%zz" not in url),
    st.binary(max_size=64),
    st.sampled_from([200, 409]),
)
def test_what_this_module_signs_the_library_verifies(method: str, url: str, body: bytes, status: int) -> None:
    headers = sign_request(method, url, body if method == "POST" else None, LIBRARY_KEY)
    request = Request(method, url, headers)
    assert _verdicts(request) == (True, True)
    bound = Request(method, url, {"Content-Digest": headers["Content-Digest"]} if "Content-Digest" in headers else {})
    answer = sign_response(status, {"Content-Type": "application/json"}, body, LIBRARY_KEY, bound)
    assert _verdicts(Response(status, answer, bound)) == (True, True)


def test_a_token_component_is_refused_as_the_library_refuses_it() -> None:
    request = Request("POST", URL, _headers("application/json", []))
    assert _library_signs(request, ['"@method"', '"content-type"'])
    headers = cast(CIMultiDict[str], request.headers)
    headers["Signature-Input"] = headers["Signature-Input"].replace('"content-type"', "content-type")
    assert _verdicts(request) == (False, False)
