"""A hub client written from PROTOCOL.md alone, as another agency would write it.

This module owns a hand-made implementation of RFC 9421 (HTTP Message
Signatures, Ed25519 only) and RFC 9530 (Content-Digest), built on the standard
library and `cryptography`. It deliberately shares no code with the hub, nor
with any signature or structured-field library, so that the interop tests prove
the hub speaks the published wire contract rather than agreeing with itself.

Only the parts of RFC 8941 (structured fields) that Signature-Input, Signature
and Content-Digest need are implemented: dictionaries whose members are inner
lists or bare items, parameters, integers, strings, byte sequences and booleans.

A sealed answer (PROTOCOL.md, "Sealed answers") is checked and opened here too:
its JWS (RFC 7515, flattened JSON, EdDSA) with `cryptography`, its HPKE
(RFC 9180) with pyhpke, sharing nothing with the agency SDK's own opener.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import secrets
import string
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from pyhpke import AEADId, CipherSuite, KDFId, KEMId, KEMKey
from pyhpke.exceptions import PyHPKEError

HUB_LABEL = "sig1"
ALGORITHM = "ed25519"
# PROTOCOL.md: the hub rejects `created` more than 300 s away from its clock;
# a requester holds the hub's answers to the same window.
MAX_CLOCK_SKEW = 300
# Components every hub or adapter response covers (PROTOCOL.md, "Signatures").
RESPONSE_MINIMUM = ("@status", "content-digest", "content-type")

SfItem = int | str | bytes | bool
Params = dict[str, SfItem]
InnerList = list[tuple[SfItem, Params]]
Member = tuple[SfItem | InnerList, Params]
Headers = Mapping[str, str]

_DIGESTS = {"sha-256": hashlib.sha256, "sha-512": hashlib.sha512}
_DEFAULT_PORTS = {"http": 80, "https": 443}
_KEY_START = string.ascii_lowercase + "*"
_KEY_CHARS = string.ascii_lowercase + string.digits + "_-.*"


class SignatureError(Exception):
    """A message signature or content digest is missing, malformed or wrong."""


class SealedAnswerError(Exception):
    """A sealed answer that is malformed, not signed by its holder's key, not for this exchange or this requester,
    does not open, or holds more than its field list."""


# --- RFC 8941 structured fields: the subset the signature headers use -------


class _SfParser:
    """Recursive-descent parser over one field value (RFC 8941 §4.2)."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def fail(self, what: str) -> SignatureError:
        return SignatureError(f"structured field: {what} at offset {self.pos} in {self.text!r}")

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def skip(self, chars: str) -> None:
        while self.peek() and self.peek() in chars:
            self.pos += 1

    def dictionary(self) -> dict[str, Member]:
        members: dict[str, Member] = {}
        self.skip(" ")
        while self.peek():
            key = self.key()
            if self.peek() == "=":
                self.pos += 1
                value: SfItem | InnerList = self.inner_list() if self.peek() == "(" else self.bare_item()
            else:
                value = True
            members[key] = (value, self.parameters())
            self.skip(" \t")
            if not self.peek():
                break
            if self.peek() != ",":
                raise self.fail("expected ','")
            self.pos += 1
            self.skip(" \t")
            if not self.peek():
                raise self.fail("trailing ','")
        return members

    def inner_list(self) -> InnerList:
        self.pos += 1  # the opening "("
        items: InnerList = []
        while True:
            self.skip(" ")
            if self.peek() == ")":
                self.pos += 1
                return items
            items.append((self.bare_item(), self.parameters()))
            if self.peek() not in (" ", ")"):
                raise self.fail("expected ' ' or ')' in inner list")

    def parameters(self) -> Params:
        params: Params = {}
        while self.peek() == ";":
            self.pos += 1
            self.skip(" ")
            key = self.key()
            if self.peek() == "=":
                self.pos += 1
                params[key] = self.bare_item()
            else:
                params[key] = True
        return params

    def key(self) -> str:
        start = self.pos
        if not self.peek() or self.peek() not in _KEY_START:
            raise self.fail("expected a key")
        while self.peek() and self.peek() in _KEY_CHARS:
            self.pos += 1
        return self.text[start : self.pos]

    def bare_item(self) -> SfItem:
        char = self.peek()
        if char and char in "-" + string.digits:
            return self.integer()
        if char == '"':
            return self.string()
        if char == ":":
            return self.byte_sequence()
        if char == "?":
            return self.boolean()
        # Tokens and decimals never appear in the headers this client reads;
        # meeting one means the peer is not following RFC 9421 / RFC 9530.
        raise self.fail("unsupported item")

    def integer(self) -> int:
        start = self.pos
        if self.peek() == "-":
            self.pos += 1
        digits_start = self.pos
        while self.peek() and self.peek() in string.digits:
            self.pos += 1
        digits = self.pos - digits_start
        if digits == 0 or digits > 15 or self.peek() == ".":
            raise self.fail("bad integer")
        return int(self.text[start : self.pos])

    def string(self) -> str:
        self.pos += 1  # the opening quote
        chars: list[str] = []
        while True:
            char = self.peek()
            if not char:
                raise self.fail("unterminated string")
            self.pos += 1
            if char == '"':
                return "".join(chars)
            if char == "\\":
                escaped = self.peek()
                if escaped not in ('"', "\\"):
                    raise self.fail("bad escape")
                self.pos += 1
                chars.append(escaped)
            elif not 0x20 <= ord(char) <= 0x7E:
                raise self.fail("non-printable character in string")
            else:
                chars.append(char)

    def byte_sequence(self) -> bytes:
        end = self.text.find(":", self.pos + 1)
        if end < 0:
            raise self.fail("unterminated byte sequence")
        encoded = self.text[self.pos + 1 : end]
        self.pos = end + 1
        try:
            return base64.b64decode(encoded, validate=True)
        except ValueError as exc:
            raise self.fail("bad base64") from exc

    def boolean(self) -> bool:
        value = self.text[self.pos + 1 : self.pos + 2]
        if value not in ("0", "1"):
            raise self.fail("bad boolean")
        self.pos += 2
        return value == "1"


def parse_dictionary(value: str) -> dict[str, Member]:
    """Parse a structured-field dictionary such as Signature-Input or Signature."""
    return _SfParser(value.strip(" ")).dictionary()


def serialise_item(item: SfItem) -> str:
    # bool first: in Python a bool is also an int.
    if isinstance(item, bool):
        return "?1" if item else "?0"
    if isinstance(item, int):
        return str(item)
    if isinstance(item, bytes):
        return ":" + base64.b64encode(item).decode("ascii") + ":"
    if any(not 0x20 <= ord(char) <= 0x7E for char in item):
        raise SignatureError(f"cannot serialise non-printable string {item!r}")
    return '"' + item.replace("\\", "\\\\").replace('"', '\\"') + '"'


def serialise_params(params: Params) -> str:
    # A true boolean parameter is written as its bare key (RFC 8941 §4.1.1.2).
    return "".join(f";{key}" if value is True else f";{key}={serialise_item(value)}" for key, value in params.items())


# --- RFC 9421 components and signature base ----------------------------------


@dataclass(frozen=True)
class Component:
    """A covered component identifier: a derived `@name` or a lower-case field name."""

    name: str
    req: bool = False

    def serialise(self) -> str:
        return serialise_item(self.name) + (";req" if self.req else "")


@dataclass(frozen=True)
class RequestView:
    """The parts of a request that signature components are drawn from."""

    method: str
    url: str
    headers: Headers


@dataclass(frozen=True)
class ResponseView:
    status: int
    headers: Headers


@dataclass(frozen=True)
class VerifiedSignature:
    components: tuple[Component, ...]
    params: Params


def field_value(headers: Headers, name: str) -> str | None:
    """An HTTP field's component value (RFC 9421 §2.1), or None when absent.

    Several field lines are joined with ", " after trimming each one; a plain
    dict is searched case-insensitively, a multidict through `getall`.
    """
    getall = getattr(headers, "getall", None)
    if getall is not None:
        values = [str(value) for value in getall(name, [])]
    else:
        values = [value for key, value in headers.items() if key.lower() == name]
    if not values:
        return None
    return ", ".join(value.strip(" \t") for value in values)


def _request_component(name: str, request: RequestView) -> str:
    parts = urlsplit(request.url)
    if name == "@method":
        return request.method
    if name == "@target-uri":
        return request.url
    if name == "@scheme":
        return parts.scheme.lower()
    if name == "@authority":
        host = parts.hostname or ""
        if ":" in host:
            host = f"[{host}]"
        if parts.port is not None and parts.port != _DEFAULT_PORTS.get(parts.scheme.lower()):
            host = f"{host}:{parts.port}"
        return host
    if name == "@path":
        return parts.path or "/"
    if name == "@query":
        return "?" + parts.query
    raise SignatureError(f"derived component {name!r} is not supported on a request")


def component_value(component: Component, request: RequestView, response: ResponseView | None) -> str:
    """Resolve one covered component against the signed message (§2.1, §2.2, §2.4)."""
    if component.req and response is None:
        raise SignatureError(f"{component.serialise()} only makes sense in a response signature")
    if response is None or component.req:
        if component.name.startswith("@"):
            return _request_component(component.name, request)
        return _covered_field(request.headers, component.name, "request")
    if component.name == "@status":
        return f"{response.status:03d}"
    if component.name.startswith("@"):
        raise SignatureError(f"{component.name!r} on a response must be marked ;req")
    return _covered_field(response.headers, component.name, "response")


def _covered_field(headers: Headers, name: str, side: str) -> str:
    value = field_value(headers, name)
    if value is None:
        raise SignatureError(f"covered field {name!r} is missing from the {side}")
    return value


def serialise_signature_params(components: list[Component] | tuple[Component, ...], params: Params) -> str:
    """The inner list written both in Signature-Input and as `@signature-params`."""
    return "(" + " ".join(component.serialise() for component in components) + ")" + serialise_params(params)


def signature_base(
    components: list[Component] | tuple[Component, ...],
    params: Params,
    request: RequestView,
    response: ResponseView | None = None,
) -> bytes:
    """Build the RFC 9421 §2.5 signature base; `response` is None when signing a request."""
    if len(set(components)) != len(components):
        raise SignatureError("a component is covered twice")
    lines = [f"{component.serialise()}: {component_value(component, request, response)}" for component in components]
    lines.append(f'"@signature-params": {serialise_signature_params(components, params)}')
    try:
        return "\n".join(lines).encode("ascii")
    except UnicodeEncodeError as exc:
        raise SignatureError("the signature base must be ASCII") from exc


def create_signature(
    components: list[Component],
    params: Params,
    private_key: Ed25519PrivateKey,
    request: RequestView,
    response: ResponseView | None = None,
    label: str = HUB_LABEL,
) -> dict[str, str]:
    """Sign a message, returning its Signature-Input and Signature fields."""
    signature = private_key.sign(signature_base(components, params, request, response))
    return {
        "Signature-Input": f"{label}={serialise_signature_params(components, params)}",
        "Signature": f"{label}={serialise_item(signature)}",
    }


def verify_signature(
    signed_headers: Headers,
    public_key: Ed25519PublicKey,
    request: RequestView,
    response: ResponseView | None = None,
    label: str | None = None,
) -> VerifiedSignature:
    """Verify one Ed25519 signature on a message.

    With no `label`, the message must carry exactly one signature, which is
    what the hub itself accepts on requests.
    """
    inputs = parse_dictionary(_required_field(signed_headers, "signature-input"))
    signatures = parse_dictionary(_required_field(signed_headers, "signature"))
    if label is None:
        if len(inputs) != 1:
            raise SignatureError(f"expected one signature, found labels {sorted(inputs)}")
        label = next(iter(inputs))
    if label not in inputs or label not in signatures:
        raise SignatureError(f"no signature labelled {label!r}")
    covered, params = inputs[label]
    signature, _ = signatures[label]
    if not isinstance(covered, list):
        raise SignatureError(f"Signature-Input {label!r} is not an inner list")
    if not isinstance(signature, bytes):
        raise SignatureError(f"Signature {label!r} is not a byte sequence")
    components = tuple(_component_from_item(item, item_params) for item, item_params in covered)
    if params.get("alg", ALGORITHM) != ALGORITHM:
        raise SignatureError(f"unexpected alg {params['alg']!r}")
    # The base is rebuilt from the parsed, re-serialised parameters, as §3.2 asks.
    try:
        public_key.verify(signature, signature_base(components, params, request, response))
    except InvalidSignature as exc:
        raise SignatureError(f"signature {label!r} does not verify") from exc
    return VerifiedSignature(components=components, params=params)


def _component_from_item(item: SfItem, params: Params) -> Component:
    if not isinstance(item, str):
        raise SignatureError(f"component identifier {item!r} is not a string")
    if any(key != "req" for key in params) or params.get("req", True) is not True:
        raise SignatureError(f"unsupported component parameters {params} on {item!r}")
    return Component(item, req="req" in params)


def _required_field(headers: Headers, name: str) -> str:
    value = field_value(headers, name)
    if value is None:
        raise SignatureError(f"missing {name} field")
    return value


# --- RFC 9530 Content-Digest --------------------------------------------------


def content_digest(body: bytes, algorithm: str = "sha-256") -> str:
    """The Content-Digest value for `body`, e.g. `sha-256=:<base64>:`."""
    return f"{algorithm}={serialise_item(_DIGESTS[algorithm](body).digest())}"


def verify_content_digest(headers: Headers, body: bytes) -> None:
    """Check every known algorithm in Content-Digest against `body`; one must be present."""
    digests = parse_dictionary(_required_field(headers, "content-digest"))
    known = {name: value for name, (value, _) in digests.items() if name in _DIGESTS}
    if not known:
        raise SignatureError(f"no sha-256 or sha-512 in Content-Digest {sorted(digests)}")
    for name, value in known.items():
        if value != _DIGESTS[name](body).digest():
            raise SignatureError(f"Content-Digest {name} does not match the body")


# --- The two operations a requester needs ------------------------------------


def sign_request(
    method: str,
    url: str,
    body: bytes | None,
    key_id: str,
    private_key: Ed25519PrivateKey,
    content_type: str = "application/json",
    *,
    created: int | None = None,
    nonce: str | None = None,
) -> dict[str, str]:
    """Headers that sign a request the way PROTOCOL.md asks.

    `url` must be the absolute URL exactly as it will be sent: it is the
    `@target-uri`. `created` and `nonce` default to now and a fresh random value.
    """
    headers: dict[str, str] = {}
    components = [Component("@method"), Component("@target-uri")]
    if body is not None:
        headers["Content-Type"] = content_type
        headers["Content-Digest"] = content_digest(body)
        components += [Component("content-digest"), Component("content-type")]
    params: Params = {
        "created": int(time.time()) if created is None else created,
        "keyid": key_id,
        "nonce": secrets.token_urlsafe(16) if nonce is None else nonce,
        "alg": ALGORITHM,
    }
    headers |= create_signature(components, params, private_key, RequestView(method, url, headers))
    return headers


def verify_response(
    status: int,
    headers: Headers,
    body: bytes,
    request_method: str,
    request_url: str,
    request_headers: Headers,
    public_key: Ed25519PublicKey,
    *,
    key_id: str | None = None,
) -> list[str]:
    """Verify the hub's (or an adapter's) signed answer to a request.

    Checks the body against Content-Digest, the `sig1` signature (resolving
    `;req` components against the request that was sent), that the minimum
    response components are covered, the key id when given, and freshness.
    Returns the serialised covered component identifiers, e.g. `"@method";req`.
    """
    verify_content_digest(headers, body)
    verified = verify_signature(
        headers,
        public_key,
        request=RequestView(request_method, request_url, request_headers),
        response=ResponseView(status, headers),
        label=HUB_LABEL,
    )
    own = {component.name for component in verified.components if not component.req}
    missing = [name for name in RESPONSE_MINIMUM if name not in own]
    if missing:
        raise SignatureError(f"response signature does not cover {missing}")
    if key_id is not None and verified.params.get("keyid") != key_id:
        raise SignatureError(f"response signed with keyid {verified.params.get('keyid')!r}, expected {key_id!r}")
    _check_freshness(verified.params)
    return [component.serialise() for component in verified.components]


def _check_freshness(params: Params) -> None:
    now = time.time()
    created = params.get("created")
    if not isinstance(created, int) or isinstance(created, bool):
        raise SignatureError("signature has no integer created parameter")
    if abs(now - created) > MAX_CLOCK_SKEW:
        raise SignatureError(f"signature created {created} is more than {MAX_CLOCK_SKEW} s from now")
    expires = params.get("expires")
    if expires is not None and (not isinstance(expires, int) or expires < now):
        raise SignatureError(f"signature expired at {expires!r}")


# --- Sealed answers (PROTOCOL.md, "Sealed answers") ---------------------------

# RFC 9180 base mode: DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, ChaCha20-Poly1305; the exchange id is the aad.
SEALED_SUITE = CipherSuite.new(KEMId.DHKEM_X25519_HKDF_SHA256, KDFId.HKDF_SHA256, AEADId.CHACHA20_POLY1305)
SEALED_INFO = b"crossroads/v1 sealed"
JWS_ALGORITHM = "EdDSA"
_BASE64URL = re.compile(r"[A-Za-z0-9_-]*")


@dataclass(frozen=True)
class OpenedAnswer:
    """A sealed answer once checked and opened: the holder's key that signed it, the fields the hub let through
    (None: all), and the record the holder sealed."""

    holder_key_id: str
    fields: tuple[str, ...] | None
    data: dict[str, Any]


def b64url_decode(text: object, what: str) -> bytes:
    """Unpadded base64url (RFC 7515 §2), strictly."""
    if not isinstance(text, str) or not _BASE64URL.fullmatch(text) or len(text) % 4 == 1:
        raise SealedAnswerError(f"{what} is not unpadded base64url")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise SealedAnswerError(f"{what} is not unpadded base64url") from exc


def _json_object(data: bytes, what: str) -> dict[str, Any]:
    try:
        document = json.loads(data)
    except ValueError as exc:
        raise SealedAnswerError(f"{what} is not JSON") from exc
    if not isinstance(document, dict):
        raise SealedAnswerError(f"{what} is not a JSON object")
    return document


def _holder_key(answer: Mapping[str, Any]) -> tuple[str, Ed25519PublicKey]:
    holder_key = answer.get("holder_key")
    if not isinstance(holder_key, dict) or not isinstance(holder_key.get("key_id"), str):
        raise SealedAnswerError('the reply has no holder_key {"key_id", "public_key_pem"}')
    try:
        public_key = load_pem_public_key(str(holder_key.get("public_key_pem")).encode("ascii"))
    except (ValueError, UnicodeEncodeError) as exc:
        raise SealedAnswerError("holder_key.public_key_pem is not a PEM public key") from exc
    if not isinstance(public_key, Ed25519PublicKey):
        raise SealedAnswerError("holder_key is not an Ed25519 key")
    return holder_key["key_id"], public_key


def verify_sealed_jws(sealed: object, holder_key_id: str, public_key: Ed25519PublicKey) -> dict[str, Any]:
    """The payload of a sealed answer's JWS, once its header is `{"alg": "EdDSA", "kid": holder_key_id}` and the
    holder's Ed25519 signature over `protected.payload` (the base64url text as sent) verifies."""
    if not isinstance(sealed, dict) or set(sealed) != {"protected", "payload", "signature"}:
        raise SealedAnswerError("sealed is not a flattened JWS: exactly protected, payload, signature")
    protected, payload = sealed["protected"], sealed["payload"]
    header = _json_object(b64url_decode(protected, "the protected header"), "the protected header")
    if header != {"alg": JWS_ALGORITHM, "kid": holder_key_id}:
        raise SealedAnswerError(f"the protected header is {header}, not alg EdDSA with kid {holder_key_id!r}")
    content = _json_object(b64url_decode(payload, "the payload"), "the payload")
    try:
        public_key.verify(b64url_decode(sealed["signature"], "the signature"), f"{protected}.{payload}".encode())
    except InvalidSignature as exc:
        raise SealedAnswerError(f"the holder's signature does not verify with key {holder_key_id!r}") from exc
    return content


def open_sealed_answer(answer: Mapping[str, Any], recipient_key_id: str, private_key: X25519PrivateKey) -> OpenedAnswer:
    """Check and open the hub's 200 reply `answer` carrying a sealed answer, for the requester whose X25519 sealing
    key is `private_key`, registered as `recipient_key_id`.

    The holder's JWS must verify with the reply's `holder_key`; its payload must name the reply's exchange and this
    recipient, open with HPKE (info `crossroads/v1 sealed`, aad the exchange id) to a JSON object, and hold no
    field outside its `fields` list when it has one. Any failure raises SealedAnswerError.
    """
    exchange = answer.get("exchange")
    if not isinstance(exchange, str):
        raise SealedAnswerError("the reply names no exchange")
    holder_key_id, public_key = _holder_key(answer)
    content = verify_sealed_jws(answer.get("sealed"), holder_key_id, public_key)
    fields, sealed = content.get("fields"), content.get("sealed")
    if set(content) != {"exchange", "fields", "recipient", "sealed"} or not isinstance(sealed, dict):
        raise SealedAnswerError(f"the payload has members {sorted(content)}, not exchange, fields, recipient, sealed")
    if fields is not None and not (isinstance(fields, list) and all(isinstance(name, str) for name in fields)):
        raise SealedAnswerError("the payload's fields are neither null nor a list of names")
    if content["exchange"] != exchange:
        raise SealedAnswerError(f"the sealed answer is for exchange {content['exchange']!r}, not {exchange!r}")
    if content["recipient"] != recipient_key_id:
        raise SealedAnswerError(f"the sealed answer is sealed to {content['recipient']!r}, not {recipient_key_id!r}")
    data = _hpke_open(sealed, exchange, private_key)
    if fields is not None and set(data) - set(fields):
        raise SealedAnswerError(f"the sealed record holds {sorted(set(data) - set(fields))} beyond its fields")
    return OpenedAnswer(holder_key_id, None if fields is None else tuple(fields), data)


def _hpke_open(sealed: Mapping[str, Any], exchange: str, private_key: X25519PrivateKey) -> dict[str, Any]:
    if set(sealed) != {"enc", "ct"}:
        raise SealedAnswerError('the payload\'s sealed is not {"enc", "ct"}')
    enc, ct = b64url_decode(sealed["enc"], "sealed.enc"), b64url_decode(sealed["ct"], "sealed.ct")
    try:
        context = SEALED_SUITE.create_recipient_context(
            enc, KEMKey.from_pyca_cryptography_key(private_key), info=SEALED_INFO
        )
        plaintext = context.open(ct, aad=exchange.encode("utf-8"))
    except (PyHPKEError, ValueError) as exc:
        raise SealedAnswerError("the sealed answer does not open with this key") from exc
    return _json_object(plaintext, "the sealed record")
