"""RFC 9421 message signatures (Ed25519) and RFC 9530 Content-Digest, exactly as PROTOCOL.md uses them.

The hub and the agency-side SDK share this module: requests are signed over
`@method @target-uri [content-digest content-type]` with `created`, `keyid`, `nonce`; responses over
`@status content-digest content-type`, bound to their request with `;req` components.

Signature bases of the components PROTOCOL.md uses (`@method`, `@target-uri`, `@status`, plain header
fields, `;req`) on plain URLs are built here directly (a fifth of the library's cost per message, which
matters four times per exchange); any other component, parameter or URL goes through
`http_message_signatures`, which tests/base/test_signing.py checks this code against.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import http_sf
from cryptography.exceptions import InvalidSignature as InvalidEd25519Signature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from http_message_signatures import (
    HTTPMessageSigner,
    HTTPMessageVerifier,
    InvalidSignature,
    MappingKeyResolver,
    algorithms,
)
from http_message_signatures.digests import ContentDigest
from http_message_signatures.exceptions import HTTPMessageSignaturesException

HUB_LABEL = "sig1"
CREATED_WINDOW_S = 300
REQUEST_COMPONENTS = ("@method", "@target-uri")
BODY_COMPONENTS = ("@method", "@target-uri", "content-digest", "content-type")
RESPONSE_COMPONENTS = ("@status", "content-digest", "content-type")
REQUIRED_PARAMS = ("created", "keyid", "nonce")
MAX_PARAMETER = 128  # longest key id or nonce the hub stores
ALGORITHM = "ed25519"
METADATA = frozenset({"alg", "created", "expires", "keyid", "nonce", "tag"})  # RFC 9421 §2.3, as the library
DIRECT_DERIVED = frozenset({"@method", "@target-uri", "@status"})
# An absolute URL whose @target-uri is the URL itself: lowercase scheme and host, a path, percent-escapes valid.
_CHARS = r"(?:[A-Za-z0-9._~!$&'()*+,;=:@/-]|%[0-9A-Fa-f]{2})"
METHOD = re.compile(r"[A-Z]+")
SINGLE_DIGEST = re.compile(r"sha-(256|512)=:([A-Za-z0-9+/]{43}=|[A-Za-z0-9+/]{86}==):")
PLAIN_URL = re.compile(rf"https?://[a-z0-9.-]+(?::[0-9]{{1,5}})?/{_CHARS}*(?:\?(?:{_CHARS}|\?)*)?")


@dataclass(frozen=True)
class Digested:
    """A body too large to hold in memory, as the digests taken while it streamed to a file (a bulk import)."""

    sha256: bytes
    sha512: bytes
    size: int

    def __bool__(self) -> bool:
        return self.size > 0


class Digesting:
    """Takes a body's digests as it streams through, chunk by chunk."""

    def __init__(self) -> None:
        self._sha256, self._sha512, self._size = hashlib.sha256(), hashlib.sha512(), 0

    def update(self, chunk: bytes) -> None:
        self._sha256.update(chunk)
        self._sha512.update(chunk)
        self._size += len(chunk)

    @property
    def size(self) -> int:
        return self._size

    def digested(self) -> Digested:
        return Digested(self._sha256.digest(), self._sha512.digest(), self._size)


class SignatureProblem(Exception):
    """A message failed signature or digest checks; `kind` names the problem type."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(detail)
        self.kind = kind
        self.detail = detail


@dataclass(frozen=True)
class SigningKey:
    """A private key with the key id others know it by."""

    key_id: str
    private_key: Ed25519PrivateKey

    @property
    def public_key(self) -> Ed25519PublicKey:
        return self.private_key.public_key()


@dataclass
class Request:
    """The parts of an HTTP request that signatures cover (the message interface the library reads)."""

    method: str
    url: str
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass
class Response:
    """The parts of an HTTP response that signatures cover, with the request it answers."""

    status_code: int
    headers: Mapping[str, str]
    request: Request | None = None


@dataclass(frozen=True)
class SignatureInput:
    """The signed parameters of a message's single signature, read before the key is looked up."""

    label: str
    key_id: str
    nonce: str | None
    created: int
    covered: tuple[str, ...]
    components: tuple[tuple[Any, dict[str, Any]], ...] = ()  # each covered component's name and parameters
    params: dict[str, Any] = field(default_factory=dict)  # every signature parameter, in signed order
    value: bytes = b""  # the signature itself


class _Indirect(Exception):
    """The message needs the library's general RFC 9421 machinery."""


class _Verifier(HTTPMessageVerifier):
    max_clock_skew = timedelta(seconds=CREATED_WINDOW_S)


def generate_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def private_key_pem(key: Ed25519PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def public_key_pem(key: Ed25519PublicKey) -> str:
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def load_private_key(pem: bytes) -> Ed25519PrivateKey:
    key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError("not an Ed25519 private key")
    return key


def load_public_key(pem: str | bytes) -> Ed25519PublicKey:
    key = serialization.load_pem_public_key(pem.encode() if isinstance(pem, str) else pem)
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError("not an Ed25519 public key")
    return key


def content_digest(body: bytes | Digested) -> str:
    if isinstance(body, Digested):
        return "sha-256=:" + base64.b64encode(body.sha256).decode() + ":"
    return ContentDigest.create(body)


def digest_file(path: Path) -> Digested:
    """The digests of a file, read a chunk at a time (blocking: call it off the event loop)."""
    digesting = Digesting()
    with path.open("rb") as file:
        while chunk := file.read(1 << 20):
            digesting.update(chunk)
    return digesting.digested()


def sign_request(
    method: str, url: str, body: bytes | Digested | None, key: SigningKey, content_type: str = "application/json"
) -> dict[str, str]:
    """Headers for a signed request: Content-Type and Content-Digest when there is a body, and the signature."""
    headers: dict[str, str] = {}
    covered: tuple[str, ...] = REQUEST_COMPONENTS
    if body is not None:
        headers = {"Content-Type": content_type, "Content-Digest": content_digest(body)}
        covered = BODY_COMPONENTS
    _sign(Request(method.upper(), url, headers), key, covered, nonce=secrets.token_urlsafe(16))
    return headers


def sign_response(
    status: int, headers: Mapping[str, str], body: bytes, key: SigningKey, request: Request | None
) -> dict[str, str]:
    """Headers for a signed response, bound to `request` (`;req`) when it is given.

    `request.headers` must hold only a Content-Digest already checked against the request body, if any.
    """
    signed = {**headers, "Content-Digest": content_digest(body)}
    message = Response(status, signed, request)
    covered = list(RESPONSE_COMPONENTS)
    if request is not None:
        covered += ['"@method";req', '"@target-uri";req']
        if "Content-Digest" in request.headers:
            covered.append('"content-digest";req')
    _sign(message, key, tuple(covered), nonce=None)
    return signed


def _sign(message: Request | Response, key: SigningKey, covered: tuple[str, ...], nonce: str | None) -> None:
    created = int(time.time())
    params: dict[str, Any] = {"created": created, "keyid": key.key_id, "alg": ALGORITHM}
    if nonce is not None:
        params["nonce"] = nonce
    components = tuple(_component(component) for component in covered)
    try:
        params_text = _inner_list(components, params)
        base = signature_base(message, components, params_text)
    except _Indirect:
        _sign_with_library(message, key, covered, nonce, created)
        return
    signature = base64.b64encode(key.private_key.sign(base)).decode()
    headers = cast(dict[str, str], message.headers)
    headers["Signature-Input"] = f"{HUB_LABEL}={params_text}"
    headers["Signature"] = f"{HUB_LABEL}=:{signature}:"


def _sign_with_library(
    message: Request | Response, key: SigningKey, covered: tuple[str, ...], nonce: str | None, created: int
) -> None:
    signer = HTTPMessageSigner(
        signature_algorithm=algorithms.ED25519,
        key_resolver=MappingKeyResolver(public_keys={}, private_keys={key.key_id: key.private_key}),
    )
    signer.sign(
        message,
        key_id=key.key_id,
        nonce=nonce,
        label=HUB_LABEL,
        covered_component_ids=covered,
        created=datetime.fromtimestamp(created, UTC),
        use_existing_digest="Content-Digest" in message.headers,
    )


def _component(serialized: str) -> tuple[str, dict[str, Any]]:
    """`"name"` or `"name";req`, as this module writes covered components."""
    name, _, flag = serialized.partition(";")
    return name.strip('"'), {flag: True} if flag else {}


def signature_base(
    message: Request | Response, components: tuple[tuple[Any, dict[str, Any]], ...], params_text: str
) -> bytes:
    """RFC 9421 §2.5 for the components of DIRECT_DERIVED and plain fields, optionally `;req`; raises _Indirect
    for anything else, and SignatureProblem where the library refuses the message too."""
    request = message if isinstance(message, Request) else message.request
    if request is not None and not METHOD.fullmatch(request.method):
        raise _Indirect(request.method)  # the library refuses what is not uppercase
    if isinstance(message, Request) and not PLAIN_URL.fullmatch(message.url):
        raise _Indirect(message.url)
    lines, seen = [], set()
    for name, params in components:
        if (
            not isinstance(name, str)
            or params not in ({}, {"req": True})
            or (name[:1] == "@" and name not in DIRECT_DERIVED)
        ):
            raise _Indirect(name)
        identity = (name, bool(params))
        if identity in seen:
            raise SignatureProblem("bad-signature", f"component {name!r} is covered twice")
        seen.add(identity)
        lines.append(f"{_sf_string(name)}{';req' if params else ''}: {_component_value(message, name, bool(params))}")
    lines.append(f'"@signature-params": {params_text}')
    base = "\n".join(lines)
    if not base.isascii():
        raise SignatureProblem("bad-signature", "the signature base holds non-ASCII characters")
    return base.encode()


def _component_value(message: Request | Response, name: str, req: bool) -> str:  # noqa: C901 -- RFC 9421 §2, one case each
    source: Request | Response = message
    if req:
        if not isinstance(message, Response) or message.request is None:
            raise SignatureProblem("bad-signature", "a request signature cannot cover components with ;req")
        source = message.request
    if name == "@status":
        if not isinstance(source, Response):
            raise SignatureProblem("bad-signature", "@status belongs to responses")
        return str(source.status_code)
    if name.startswith("@"):
        if not isinstance(source, Request):
            raise SignatureProblem("bad-signature", f"a response covers {name} only with ;req")
        if not PLAIN_URL.fullmatch(source.url):
            raise _Indirect(source.url)
        return source.method if name == "@method" else source.url
    if name != name.lower():
        raise SignatureProblem("bad-signature", f"component {name!r} is not lowercase")
    lines = [_field_line(value) for key, value in source.headers.items() if key.lower() == name]
    if not lines:
        raise SignatureProblem("bad-signature", f"the covered field {name!r} is not in the message")
    value = ", ".join(lines)
    if "\r" in value or "\n" in value or not value.replace("\t", " ").isprintable():
        raise SignatureProblem("bad-signature", f"the covered field {name!r} holds control characters")
    return value


def _field_line(value: str) -> str:
    if "\r\n" in value:  # obsolete line folding: the library unfolds it
        raise _Indirect("folded field")
    return value.strip(" \t")


def _inner_list(components: tuple[tuple[Any, dict[str, Any]], ...], params: dict[str, Any]) -> str:
    """The Structured Field serialisation of the signature parameters (RFC 8941 §4.1.1.1)."""
    if not all(isinstance(name, str) for name, _ in components):
        raise _Indirect("a component that is no string")
    items = " ".join(_sf_string(name) + _sf_params(flags) for name, flags in components)
    return f"({items}){_sf_params(params)}"


def _sf_params(params: dict[str, Any]) -> str:
    text = ""
    for name, value in params.items():
        if value is True:
            text += f";{name}"
        elif type(value) is int:
            text += f";{name}={value}"
        elif isinstance(value, str):
            text += f";{name}={_sf_string(value)}"
        else:
            raise _Indirect(name)
    return text


def _sf_string(value: str) -> str:
    if not value.isascii() or not value.isprintable():
        raise _Indirect(value)
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def read_signature_input(  # noqa: C901 -- PROTOCOL.md's checks, in its order
    headers: Mapping[str, str], *, require_nonce: bool = True
) -> SignatureInput:
    """Parse the one signature a message carries, checking the parameters PROTOCOL.md requires."""
    raw_input = _header(headers, "signature-input")
    raw_signature = _header(headers, "signature")
    if raw_input is None or raw_signature is None:
        raise SignatureProblem("unsigned", "the message carries no Signature-Input and Signature headers")
    try:
        inputs = cast(dict[str, Any], http_sf.parse(raw_input.encode("latin-1"), tltype="dictionary"))
        signatures = cast(dict[str, Any], http_sf.parse(raw_signature.encode("latin-1"), tltype="dictionary"))
    except (ValueError, TypeError, UnicodeEncodeError) as error:
        raise SignatureProblem("bad-signature", "Signature-Input or Signature is not a valid dictionary") from error
    if len(inputs) != 1 or inputs.keys() != signatures.keys():
        raise SignatureProblem("bad-signature", "expected exactly one signature, with matching labels")
    label, (components, params) = next(iter(inputs.items()))
    if not isinstance(components, list):
        raise SignatureProblem("bad-signature", "the Signature-Input member must be an inner list")
    required = REQUIRED_PARAMS if require_nonce else ("created", "keyid")
    missing = [name for name in required if name not in params]
    if missing:
        raise SignatureProblem("bad-signature", f"signature parameters missing: {', '.join(missing)}")
    if type(params["created"]) is not int or not isinstance(params["keyid"], str):
        raise SignatureProblem("bad-signature", "created must be an integer and keyid a string")
    if not 0 < len(params["keyid"]) <= MAX_PARAMETER:
        raise SignatureProblem("bad-signature", f"keyid must be 1 to {MAX_PARAMETER} characters")
    nonce = params.get("nonce")
    if require_nonce and (not isinstance(nonce, str) or not 0 < len(nonce) <= MAX_PARAMETER):
        raise SignatureProblem("bad-signature", f"nonce must be a string of 1 to {MAX_PARAMETER} characters")
    if params.get("alg", "ed25519") != "ed25519":
        raise SignatureProblem("bad-signature", "alg must be ed25519")
    value = signatures[label][0]
    if not isinstance(value, bytes):
        raise SignatureProblem("bad-signature", "the Signature member must be a byte sequence")
    covered = tuple(_serialized(name, flags) for name, flags in components)
    parsed = tuple((name, dict(flags)) for name, flags in components)
    return SignatureInput(label, params["keyid"], nonce, params["created"], covered, parsed, dict(params), value)


def _serialized(name: Any, flags: dict[str, Any]) -> str:
    """A covered component's identifier as Structured Fields writes it (`"content-digest";req`)."""
    if isinstance(name, str):
        try:
            return _sf_string(name) + _sf_params(flags)
        except _Indirect:
            pass
    return str(http_sf.ser((name, flags)))


def check_created(created: int, now: float, window_s: int = CREATED_WINDOW_S) -> None:
    """Refuse a signature created more than `window_s` seconds away from `now` (either way)."""
    if abs(now - created) > window_s:
        raise SignatureProblem(
            "stale-signature",
            f"created is {int(now - created)} s away from the hub clock (limit {window_s} s)",
        )


def check_expires(params: Mapping[str, Any], now: float) -> None:
    """Refuse a signature whose `expires` (RFC 9421 §2.3) has passed or comes before its `created`."""
    expires = params.get("expires")
    if expires is None:
        return
    if type(expires) is not int:
        raise SignatureProblem("bad-signature", "expires must be an integer")
    if expires < params["created"]:
        raise SignatureProblem("expired-signature", "expires is before created")
    if expires < now:
        raise SignatureProblem("expired-signature", f"the signature expired {int(now - expires)} s ago")


def check_coverage(covered: tuple[str, ...], has_body: bool) -> None:
    needed = BODY_COMPONENTS if has_body else REQUEST_COMPONENTS
    names = {component.split(";")[0].strip('"') for component in covered}
    absent = [name for name in needed if name not in names]
    if absent:
        raise SignatureProblem("bad-signature", f"the signature must cover {', '.join(absent)}")


def verify_request(request: Request, body: bytes | Digested, signature: SignatureInput, key: Ed25519PublicKey) -> None:
    """Verify the signature with `key` and the body against its signed Content-Digest."""
    check_coverage(signature.covered, has_body=bool(body) or _header(request.headers, "content-digest") is not None)
    verify_signature(request, signature, key)
    digest = _header(request.headers, "content-digest")
    if digest is not None or body:
        _check_digest(digest, body)


def verify_response(response: Response, body: bytes, key_id: str, key: Ed25519PublicKey) -> tuple[str, ...]:
    """Verify a response signed by `key_id` and its body; return the covered components."""
    signature = read_signature_input(response.headers, require_nonce=False)
    if signature.key_id != key_id:
        raise SignatureProblem("bad-signature", f"response signed by {signature.key_id!r}, expected {key_id!r}")
    names = {component.split(";")[0].strip('"') for component in signature.covered if ";req" not in component}
    if not set(RESPONSE_COMPONENTS) <= names:
        raise SignatureProblem(
            "bad-signature", "the response signature must cover @status, content-digest, content-type"
        )
    verify_signature(response, signature, key)
    _check_digest(_header(response.headers, "content-digest"), body)
    return signature.covered


def verify_signature(message: Request | Response, signature: SignatureInput, key: Ed25519PublicKey) -> None:
    """Verify the message's signature, as read by `read_signature_input`, with `key` (digests aside)."""
    try:
        base = signature_base(message, signature.components, _inner_list(signature.components, signature.params))
    except _Indirect:
        _verify_with_library(message, signature, key)
        return
    _check_metadata(signature.params, time.time())
    try:
        key.verify(signature.value, base)
    except InvalidEd25519Signature as error:
        raise SignatureProblem("bad-signature", "the signature does not verify") from error


def _check_metadata(params: Mapping[str, Any], now: float) -> None:  # noqa: C901 -- one check per parameter
    """The signature parameters' rules, as the library applies them (with CREATED_WINDOW_S as its clock skew
    and its maximum age)."""
    unexpected = sorted(set(params) - METADATA)
    if unexpected:
        raise SignatureProblem("bad-signature", f"unexpected signature parameters: {', '.join(unexpected)}")
    for name in ("created", "expires"):
        if name in params and type(params[name]) is not int:
            raise SignatureProblem("bad-signature", f"{name} must be an integer")
    for name in ("alg", "keyid", "nonce", "tag"):
        if name in params and not isinstance(params[name], str):
            raise SignatureProblem("bad-signature", f"{name} must be a string")
    if params.get("alg", ALGORITHM) != ALGORITHM:
        raise SignatureProblem("bad-signature", "alg must be ed25519")
    created = params.get("created")
    if created is None:
        raise SignatureProblem("bad-signature", "the signature has no created parameter")
    if created > now + CREATED_WINDOW_S:
        raise SignatureProblem("bad-signature", "the signature was created in the future")
    if created + CREATED_WINDOW_S < now - CREATED_WINDOW_S:
        raise SignatureProblem("bad-signature", "the signature is too old")
    if "expires" in params and params["expires"] < now - CREATED_WINDOW_S:
        raise SignatureProblem("bad-signature", "the signature has expired")


def _verify_with_library(message: Request | Response, signature: SignatureInput, key: Ed25519PublicKey) -> None:
    verifier = _Verifier(
        signature_algorithm=algorithms.ED25519,
        key_resolver=MappingKeyResolver(public_keys={signature.key_id: key}, private_keys={}),
    )
    try:
        verifier.verify(message, max_age=timedelta(seconds=CREATED_WINDOW_S))
    except (InvalidSignature, HTTPMessageSignaturesException) as error:
        raise SignatureProblem("bad-signature", f"the signature does not verify: {error}") from error


def _check_digest(value: str | None, body: bytes | Digested) -> None:
    if value is None:
        raise SignatureProblem("bad-digest", "a body needs a Content-Digest header")
    if isinstance(body, Digested):
        _check_digested(value, body)
        return
    single = SINGLE_DIGEST.fullmatch(value)
    if single is not None:  # one digest in canonical form, as every signer here writes it
        algorithm, encoded = single.groups()
        expected = base64.b64decode(encoded)
        digest = (hashlib.sha256 if algorithm == "256" else hashlib.sha512)(body).digest()
        if len(expected) != len(digest):
            raise SignatureProblem("bad-digest", f"Content-Digest holds no sha-{algorithm} digest")
        if not hmac.compare_digest(expected, digest):
            raise SignatureProblem("bad-digest", "Content-Digest does not match the body")
        return
    try:
        ContentDigest.verify(value, body)
    except (InvalidSignature, HTTPMessageSignaturesException) as error:
        raise SignatureProblem("bad-digest", f"Content-Digest does not match the body: {error}") from error


def _check_digested(value: str, body: Digested) -> None:
    """The Content-Digest of a streamed body: every member sha-256 or sha-512, and each matching."""
    try:
        members = cast(dict[str, Any], http_sf.parse(value.encode("latin-1"), tltype="dictionary"))
    except (ValueError, TypeError, UnicodeEncodeError) as error:
        raise SignatureProblem("bad-digest", "Content-Digest is not a structured-field dictionary") from error
    taken = {"sha-256": body.sha256, "sha-512": body.sha512}
    if not members:
        raise SignatureProblem("bad-digest", "Content-Digest holds no digest")
    for algorithm, (expected, _parameters) in members.items():
        if algorithm not in taken or not isinstance(expected, bytes):
            raise SignatureProblem("bad-digest", f"Content-Digest member {algorithm!r} is not sha-256 or sha-512")
        if not hmac.compare_digest(expected, taken[algorithm]):
            raise SignatureProblem("bad-digest", "Content-Digest does not match the body")


def _header(headers: Mapping[str, str], name: str) -> str | None:
    for key, value in headers.items():
        if key.lower() == name:
            return value
    return None


def now() -> float:
    return time.time()
