"""The hostile-input corpus: every endpoint the hub serves, attacked through its signature, its principal, its
target, its headers and its body. Each case is one row: what is sent, the status and problem type it must get,
and then, the same for every row, that the attempt left its audit record and changed nothing else.

Generated rows apply each signature attack to every route (a core battery) or to one route per role (the full
battery), and every role that may not call a route to that route; hand-written rows follow.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import unquote

import pytest
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from yarl import URL

from adapters.examples.demo_agencies import ANNA, JAN, PIETER
from broker.audit.log import digest
from broker.base.signing import REQUEST_COMPONENTS, content_digest, generate_key, public_key_pem
from broker.http import add_routes
from broker.http.middleware import kind_of
from policies.service import OperatorGate
from tests.hostile.conftest import Hostile
from tests.hostile.forge import Answer, Headers, Signing, send, sign
from tests.hostile.state import last_seq, records_after, snapshot

NOBODY = "00000000-0000-4000-8000-000000000000"  # a well-formed id no record has
PRINCIPAL_OF_ROLE = {
    "agency": "family-benefits",
    "admin": "admin-desk",
    "privacy_officer": "privacy-office",
    "citizen_portal": "citizen-portal",
}
SUSPENDED_OF_ROLE = {"agency": "suspended-agency-2026", "admin": "suspended-desk-2026"}
GATE = OperatorGate()
WHITE = {"subject": ANNA, "category": "civil-status", "purpose": "benefit-eligibility"}


@dataclass(frozen=True)
class Route:
    """A route the hub serves, with a concrete target, a principal whose role may call it, and a body."""

    method: str
    target: str
    principal: str
    document: dict[str, Any] | None = None

    @property
    def body(self) -> bytes | None:
        return None if self.document is None else json.dumps(self.document).encode()

    def forbidden_principals(self) -> list[str]:
        path = self.target.split("?")[0]
        return [name for role, name in PRINCIPAL_OF_ROLE.items() if not GATE.allows(role, path, self.method)]


ROUTES = (
    Route("POST", "/v1/exchanges", "family-benefits", WHITE),
    Route(
        "POST",
        "/v1/consents",
        "admin-desk",
        {
            "subject": ANNA,
            "grantee": "family-benefits",
            "categories": ["income"],
            "purposes": ["benefit-eligibility"],
            "evidence": "paper form",
        },
    ),
    Route("POST", f"/v1/consents/{NOBODY}/withdraw", "admin-desk"),
    Route("GET", f"/v1/subjects/{ANNA}/consents", "citizen-portal"),
    Route("POST", "/v1/refusals", "citizen-portal", {"subject": ANNA, "agency": "tax-authority"}),
    Route("POST", f"/v1/refusals/{NOBODY}/lift", "admin-desk"),
    Route("GET", "/v1/reviews", "privacy-office"),
    Route("POST", f"/v1/reviews/{NOBODY}/decision", "privacy-office", {"decision": "approve", "reason": "ok"}),
    Route("POST", f"/v1/reviews/{NOBODY}/propose", "privacy-office", {"reason": "make it standing"}),
    Route("GET", "/v1/policies", "admin-desk"),
    Route(
        "POST",
        "/v1/policies",
        "admin-desk",
        {
            "rule": {
                "id": "r-hostile",
                "requester": "agency:tax-authority",
                "category": "health-record",
                "purpose": "benefit-eligibility",
                "zone": "white",
                "ground": "hostile decree, art. 1",
            },
            "reason": "hostile",
        },
    ),
    Route("DELETE", "/v1/policies/r-1", "admin-desk", {"reason": "hostile"}),
    Route(
        "POST",
        "/v1/policies/evaluate",
        "privacy-office",
        {"requester": "tax-authority", "category": "health-record", "purpose": "benefit-eligibility"},
    ),
    Route("GET", "/v1/policies/history", "admin-desk"),
    Route("POST", "/v1/policies/rollback", "admin-desk", {"version": 1, "reason": "hostile"}),
    Route("GET", "/v1/policies/proposals", "admin-desk"),
    Route("POST", f"/v1/policies/proposals/{NOBODY}/accept", "admin-desk", {"reason": "hostile"}),
    Route("GET", "/v1/policies/changes", "admin-desk"),
    Route("POST", f"/v1/policies/changes/{NOBODY}/approve", "admin-desk", {"reason": "hostile"}),
    Route("POST", f"/v1/policies/changes/{NOBODY}/reject", "admin-desk", {"reason": "hostile"}),
    Route("POST", f"/v1/policies/changes/{NOBODY}/evaluate", "admin-desk", {}),
    Route("GET", "/v1/audit", "privacy-office"),
    Route("GET", "/v1/audit/verify", "privacy-office"),
    Route("GET", "/v1/audit/anomalies", "privacy-office"),
    Route("GET", f"/v1/subjects/{ANNA}/access-log", "citizen-portal"),
    Route(
        "POST",
        "/v1/notifications",
        "population-register",
        {"subject": ANNA, "category": "civil-status", "event": "updated", "ref": "hostile"},
    ),
    Route("GET", "/v1/notifications/dead-letters", "admin-desk"),
    Route("POST", "/v1/notifications/dead-letters/replay", "admin-desk", {}),
    Route("PUT", "/v1/notifications/opt-outs/income", "family-benefits"),
    Route("DELETE", "/v1/notifications/opt-outs/income", "family-benefits"),
    Route("GET", "/v1/agencies/family-benefits/keys", "admin-desk"),
    Route(
        "POST",
        "/v1/agencies/family-benefits/keys",
        "admin-desk",
        {"key_id": "family-benefits-hostile", "public_key_pem": "not a key"},
    ),
    Route(
        "POST",
        "/v1/agencies/family-benefits/keys/family-benefits-2026/revoke",
        "admin-desk",
        {"reason": "hostile"},
    ),
    Route("GET", "/v1/agencies", "admin-desk"),
    Route("POST", "/v1/agencies", "admin-desk", {"id": "hostile-agency", "name": "H", "adapter_url": "http://x"}),
    Route("GET", "/v1/agencies/family-benefits", "admin-desk"),
    Route("PATCH", "/v1/agencies/family-benefits", "admin-desk", {"status": "suspended", "reason": "hostile"}),
    Route("GET", "/v1/categories", "admin-desk"),
    Route("POST", "/v1/categories", "admin-desk", {"name": "hostile", "reason": "hostile"}),
    Route("PATCH", "/v1/categories/income", "admin-desk", {"sealed": True, "reason": "hostile"}),
    Route("GET", "/v1/categories/income/history", "admin-desk"),
    Route("GET", "/v1/purposes", "admin-desk"),
    Route("POST", "/v1/purposes", "admin-desk", {"name": "hostile", "reason": "hostile"}),
    Route("GET", "/v1/capacities", "admin-desk"),
    Route("POST", "/v1/capacities", "admin-desk", {"name": "hostile", "reason": "hostile"}),
    Route(
        "PUT",
        "/v1/directory/relationships",
        "family-benefits",
        {"subject": ANNA, "capacity": "beneficiary", "from": "2026-01-01T00:00:00Z"},
    ),
    Route(
        "PUT",
        "/v1/directory/holdings",
        "population-register",
        {"subject": ANNA, "category": "civil-status", "from": "2026-01-01T00:00:00Z"},
    ),
    Route("GET", f"/v1/subjects/{ANNA}/holders", "family-benefits"),
    Route("GET", f"/v1/subjects/{ANNA}/relationships", "privacy-office"),
    Route("POST", "/v1/directory/imports", "family-benefits", {"kind": "relationship", "subject": ANNA}),
    Route("GET", f"/v1/directory/imports/{NOBODY}", "family-benefits"),
    Route("POST", "/v1/batches", "family-benefits", {"ref": 1, **WHITE}),
    Route("GET", f"/v1/batches/{NOBODY}", "family-benefits"),
    Route("GET", f"/v1/batches/{NOBODY}/results", "family-benefits"),
    Route("POST", f"/v1/batches/{NOBODY}/cancel", "family-benefits"),
)
# One route per role gets every signature attack; the others get the core battery.
FULL_BATTERY = {
    ("POST", "/v1/exchanges"),
    ("POST", "/v1/consents"),
    ("POST", f"/v1/reviews/{NOBODY}/decision"),
    ("GET", "/v1/audit"),
    ("GET", f"/v1/subjects/{ANNA}/access-log"),
    ("POST", "/v1/agencies/family-benefits/keys/family-benefits-2026/revoke"),
}


@dataclass(frozen=True)
class Sent:
    method: str
    target: str
    headers: Headers
    body: bytes | None


Forge = Callable[[Hostile], list[Sent]]  # the requests of a case, in order; the last is the hostile one


@dataclass(frozen=True)
class Case:
    name: str
    forge: Forge
    answers: tuple[tuple[int, str | None], ...]  # (status, problem name) of each request
    body_read: bool = True  # False: refused before the body is read, so the record has no request digest

    @property
    def id(self) -> str:
        return self.name


def signed(
    hostile: Hostile,
    key_id: str,
    method: str,
    target: str,
    body: bytes | None,
    signing: Signing | None = None,
    *,
    private_key_of: str | None = None,
    content_type: str | None = "application/json",
    signed_target: str | None = None,
    signed_method: str | None = None,
    digest: str | None = None,
) -> Sent:
    """A request signed under `key_id` (by its own private key unless `private_key_of` names another)."""
    private = hostile.keys[private_key_of or key_id].private_key
    url = hostile.url(signed_target or target)
    headers = sign(signed_method or method, url, body, key_id, private, signing or Signing(), content_type, digest)
    return Sent(method, target, headers, body)


def key_id(hostile: Hostile, principal: str) -> str:
    return hostile.key_of(principal).key_id


def as_route(hostile: Hostile, route: Route, signing: Signing | None = None, **options: Any) -> Sent:
    return signed(hostile, key_id(hostile, route.principal), route.method, route.target, route.body, signing, **options)


def without(sent: Sent, *names: str) -> Sent:
    dropped = {name.lower() for name in names}
    return replace(sent, headers=[(name, value) for name, value in sent.headers if name.lower() not in dropped])


def with_header(sent: Sent, name: str, value: str) -> Sent:
    return replace(sent, headers=[*without(sent, name).headers, (name, value)])


def header(sent: Sent, name: str) -> str:
    return next(value for key, value in sent.headers if key.lower() == name.lower())


def random_signature() -> str:
    return f"sig1=:{base64.b64encode(secrets.token_bytes(64)).decode()}:"


def ago(seconds: int) -> datetime:
    return datetime.now(UTC) - timedelta(seconds=seconds)


# --- signature attacks, applied per route ------------------------------------------------------------------

Attack = Callable[[Hostile, Route], list[Sent]]


def unsigned(hostile: Hostile, route: Route) -> list[Sent]:
    return [without(as_route(hostile, route), "Signature", "Signature-Input")]


def replayed(hostile: Hostile, route: Route) -> list[Sent]:
    """A signature that verifies (by a principal whose role may not call the route: refused, nothing
    changes), sent twice: its nonce is consumed by the first."""
    sent = signed(hostile, key_id(hostile, route.forbidden_principals()[0]), route.method, route.target, route.body)
    return [sent, sent]


def suspended(hostile: Hostile, route: Route) -> list[Sent]:
    role = "agency" if route.principal in hostile.world.adapter_urls else "admin"
    return [signed(hostile, SUSPENDED_OF_ROLE[role], route.method, route.target, route.body)]


def body_changed(hostile: Hostile, route: Route) -> list[Sent]:
    sent = as_route(hostile, route)
    return [replace(sent, body=(sent.body or b"") + b" ")]


def forged_bytes(hostile: Hostile, route: Route) -> list[Sent]:
    return [with_header(as_route(hostile, route), "Signature", random_signature())]


def other_agencys_key(hostile: Hostile, route: Route) -> list[Sent]:
    """Signed under the route principal's key id with another agency's private key."""
    return [as_route(hostile, route, private_key_of="health-insurance-2026")]


def stale(hostile: Hostile, route: Route) -> list[Sent]:
    return [as_route(hostile, route, Signing(created=ago(600)))]


def ahead(hostile: Hostile, route: Route) -> list[Sent]:
    return [as_route(hostile, route, Signing(created=ago(-600)))]


def epoch(hostile: Hostile, route: Route) -> list[Sent]:
    return [as_route(hostile, route, Signing(created=datetime(1970, 1, 1, tzinfo=UTC)))]


def expired(hostile: Hostile, route: Route) -> list[Sent]:
    return [as_route(hostile, route, Signing(expires=ago(60)))]


def expires_before_created(hostile: Hostile, route: Route) -> list[Sent]:
    """Both in the future, within the clock window: only their order is wrong."""
    return [as_route(hostile, route, Signing(created=ago(-120), expires=ago(-60)))]


def signature_without_input(hostile: Hostile, route: Route) -> list[Sent]:
    return [without(as_route(hostile, route), "Signature-Input")]


def unparseable_input(hostile: Hostile, route: Route) -> list[Sent]:
    return [with_header(as_route(hostile, route), "Signature-Input", "sig1=((( keyid")]


def two_signatures(hostile: Hostile, route: Route) -> list[Sent]:
    sent = as_route(hostile, route)
    second_input = 'sig2=("@method");created=1;keyid="family-benefits-2026";nonce="n"'
    second = "sig2=" + random_signature().removeprefix("sig1=")
    sent = with_header(sent, "Signature-Input", header(sent, "Signature-Input") + ", " + second_input)
    return [with_header(sent, "Signature", header(sent, "Signature") + ", " + second)]


def signature_header_twice(hostile: Hostile, route: Route) -> list[Sent]:
    sent = as_route(hostile, route)
    return [replace(sent, headers=[*sent.headers, ("Signature", random_signature())])]


def unknown_key(hostile: Hostile, route: Route) -> list[Sent]:
    return [
        signed(hostile, "nobody-2026", route.method, route.target, route.body, private_key_of="family-benefits-2026")
    ]


def key(key_id: str) -> Attack:
    def attack(hostile: Hostile, route: Route) -> list[Sent]:
        return [signed(hostile, key_id, route.method, route.target, route.body)]

    return attack


def no_nonce(hostile: Hostile, route: Route) -> list[Sent]:
    return [as_route(hostile, route, Signing(nonce=None))]


def long_nonce(hostile: Hostile, route: Route) -> list[Sent]:
    return [as_route(hostile, route, Signing(nonce="n" * 200))]


def other_alg(hostile: Hostile, route: Route) -> list[Sent]:
    sent = as_route(hostile, route)
    return [with_header(sent, "Signature-Input", header(sent, "Signature-Input").replace("ed25519", "hmac-sha256"))]


def target_not_covered(hostile: Hostile, route: Route) -> list[Sent]:
    covered = ("@method",) if route.body is None else ("@method", "content-digest", "content-type")
    return [as_route(hostile, route, Signing(covered=covered))]


def another_path(hostile: Hostile, route: Route) -> list[Sent]:
    return [as_route(hostile, route, signed_target="/v1/elsewhere")]


def another_method(hostile: Hostile, route: Route) -> list[Sent]:
    return [as_route(hostile, route, signed_method="PATCH")]


def another_hub(hostile: Hostile, route: Route) -> list[Sent]:
    private = hostile.key_of(route.principal).private_key
    url = "https://hub.elsewhere.example" + route.target
    headers = sign(route.method, url, route.body, key_id(hostile, route.principal), private, Signing())
    return [Sent(route.method, route.target, headers, route.body)]


def digest_updated(hostile: Hostile, route: Route) -> list[Sent]:
    """The body changed after signing, with a Content-Digest of the new body: the signed digest no longer holds."""
    sent = as_route(hostile, route)
    body = (sent.body or b"") + b" "
    return [replace(with_header(sent, "Content-Digest", content_digest(body)), body=body)]


def digest_not_covered(hostile: Hostile, route: Route) -> list[Sent]:
    return [as_route(hostile, route, Signing(covered=REQUEST_COMPONENTS))]


def digest_removed(hostile: Hostile, route: Route) -> list[Sent]:
    return [without(as_route(hostile, route), "Content-Digest")]


def md5_digest(hostile: Hostile, route: Route) -> list[Sent]:
    """A Content-Digest of an algorithm the hub does not accept, correctly signed."""
    weak = hashlib.md5(route.body or b"").digest()  # noqa: S324 -- the weak digest the hub must refuse
    md5 = "md5=:" + base64.b64encode(weak).decode() + ":"
    return [as_route(hostile, route, digest=md5)]


def content_type_changed(hostile: Hostile, route: Route) -> list[Sent]:
    return [with_header(as_route(hostile, route), "Content-Type", "application/json; charset=utf-8")]


Expect = tuple[tuple[int, str | None], ...]
ONCE_401 = {
    name: ((401, name),)
    for name in ("unsigned", "bad-signature", "bad-digest", "unknown-key", "stale-signature", "expired-signature")
}
CORE: list[tuple[str, Attack, Expect]] = [
    ("unsigned", unsigned, ONCE_401["unsigned"]),
    ("forged signature bytes", forged_bytes, ONCE_401["bad-signature"]),
    ("signed by another agency's key", other_agencys_key, ONCE_401["bad-signature"]),
    ("created 10 minutes ago", stale, ONCE_401["stale-signature"]),
    ("replayed nonce", replayed, ((403, "forbidden"), (409, "replay"))),
    ("suspended principal", suspended, ((403, "suspended"),)),
]
CORE_WITH_BODY: list[tuple[str, Attack, Expect]] = [
    ("body changed after signing", body_changed, ONCE_401["bad-digest"]),
]
FULL: list[tuple[str, Attack, Expect]] = [
    ("signature without its input", signature_without_input, ONCE_401["unsigned"]),
    ("unparseable Signature-Input", unparseable_input, ONCE_401["bad-signature"]),
    ("two signatures", two_signatures, ONCE_401["bad-signature"]),
    ("Signature header sent twice", signature_header_twice, ONCE_401["bad-signature"]),
    ("unknown key id", unknown_key, ONCE_401["unknown-key"]),
    ("revoked key", key("family-benefits-revoked"), ONCE_401["unknown-key"]),
    ("expired key", key("family-benefits-expired"), ONCE_401["unknown-key"]),
    ("key not valid yet", key("family-benefits-future"), ONCE_401["unknown-key"]),
    ("created 10 minutes ahead", ahead, ONCE_401["stale-signature"]),
    ("created at the epoch", epoch, ONCE_401["stale-signature"]),
    ("expired a minute ago", expired, ONCE_401["expired-signature"]),
    ("expires before it was created", expires_before_created, ONCE_401["expired-signature"]),
    ("no nonce", no_nonce, ONCE_401["bad-signature"]),
    ("a 200-character nonce", long_nonce, ONCE_401["bad-signature"]),
    ("alg other than ed25519", other_alg, ONCE_401["bad-signature"]),
    ("@target-uri not covered", target_not_covered, ONCE_401["bad-signature"]),
    ("signed for another path", another_path, ONCE_401["bad-signature"]),
    ("signed for another method", another_method, ONCE_401["bad-signature"]),
    ("signed for another hub", another_hub, ONCE_401["bad-signature"]),
]
FULL_WITH_BODY: list[tuple[str, Attack, Expect]] = [
    ("digest updated for a changed body", digest_updated, ONCE_401["bad-signature"]),
    ("content-digest not covered", digest_not_covered, ONCE_401["bad-signature"]),
    ("Content-Digest removed", digest_removed, ONCE_401["bad-signature"]),
    ("md5 Content-Digest", md5_digest, ONCE_401["bad-digest"]),
    ("Content-Type changed after signing", content_type_changed, ONCE_401["bad-signature"]),
]


def route_case(route: Route, name: str, attack: Attack, answers: Expect) -> Case:
    return Case(f"{route.method} {route.target}: {name}", lambda hostile: attack(hostile, route), answers)


def forbidden_case(route: Route, principal: str) -> Case:
    def forge(hostile: Hostile) -> list[Sent]:
        return [signed(hostile, key_id(hostile, principal), route.method, route.target, route.body)]

    return Case(f"{route.method} {route.target}: called by {principal}", forge, ((403, "forbidden"),))


def generated() -> list[Case]:
    cases = []
    for route in ROUTES:
        attacks = CORE + (CORE_WITH_BODY if route.body is not None else [])
        if (route.method, route.target) in FULL_BATTERY:
            attacks += FULL + (FULL_WITH_BODY if route.body is not None else [])
        cases += [route_case(route, name, attack, answers) for name, attack, answers in attacks]
        cases += [forbidden_case(route, principal) for principal in route.forbidden_principals()]
    return cases


# --- hand-written rows: bodies, targets, headers, ids, queries ---------------------------------------------


def request(
    name: str,
    principal: str,
    method: str,
    target: str,
    body: bytes | dict[str, Any] | None,
    answer: tuple[int, str | None],
    *,
    content_type: str | None = "application/json",
    headers: Headers = (),  # type: ignore[assignment]
    body_read: bool = True,
    signed_target: str | None = None,
) -> Case:
    """A row signed correctly by `principal`'s key: the attack is in the target, the headers or the body."""
    raw = json.dumps(body).encode() if isinstance(body, dict) else body

    def forge(hostile: Hostile) -> list[Sent]:
        sent = signed(
            hostile,
            key_id(hostile, principal),
            method,
            target,
            raw,
            content_type=content_type,
            signed_target=signed_target,
        )
        return [replace(sent, headers=[*sent.headers, *headers])]

    return Case(name, forge, (answer,), body_read=body_read)


def exchange(name: str, body: bytes | dict[str, Any], answer: tuple[int, str | None], **options: Any) -> Case:
    return request(f"exchange: {name}", "family-benefits", "POST", "/v1/exchanges", body, answer, **options)


def exchange_with(name: str, answer: tuple[int, str | None], **members: Any) -> Case:
    return exchange(name, {**WHITE, **members}, answer)


def raw_exchange(text: str) -> bytes:
    """An exchange body whose last members are written by hand (duplicates, NaN, huge numbers)."""
    head = json.dumps(WHITE, separators=(",", ":"))[:-1]
    return f"{head},{text}}}".encode()


def nested(depth: int) -> bytes:
    return raw_exchange('"params":{"x":' + "[" * depth + "]" * depth + "}")


def admin(
    name: str, method: str, target: str, body: dict[str, Any] | bytes | None, answer: tuple[int, str | None]
) -> Case:
    return request(name, "admin-desk", method, target, body, answer)


def officer(name: str, method: str, target: str, body: dict[str, Any] | None, answer: tuple[int, str | None]) -> Case:
    return request(name, "privacy-office", method, target, body, answer)


def portal(name: str, target: str, answer: tuple[int, str | None]) -> Case:
    return request(name, "citizen-portal", "GET", target, None, answer)


def consent(**members: Any) -> dict[str, Any]:
    base = {
        "subject": ANNA,
        "grantee": "family-benefits",
        "categories": ["income"],
        "purposes": ["benefit-eligibility"],
        "evidence": "paper form",
    }
    return {**base, **members}


def rule(**members: Any) -> dict[str, Any]:
    base = {
        "id": "r-hostile",
        "requester": "agency:tax-authority",
        "category": "health-record",
        "purpose": "benefit-eligibility",
        "zone": "white",
        "ground": "hostile decree, art. 1",
    }
    return {"rule": {**base, **members}, "reason": "hostile"}


def notification(**members: Any) -> dict[str, Any]:
    return {"subject": ANNA, "category": "civil-status", "event": "updated", "ref": "r-1", **members}


INVALID, MALFORMED, NOT_FOUND = (422, "invalid"), (400, "malformed"), (404, "not-found")
UNPARSEABLE = (400, "unparseable-request")  # refused by the HTTP parser, before the hub reads the request
FRESH = public_key_pem(generate_key().public_key())
RSA = (
    rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505 -- a key the hub must refuse
    .public_key()
    .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    .decode()
)
SQL = "x' OR '1'='1'; DROP TABLE agencies; --"
LOG_LINE = '\n{"event": "exchange.answered", "status": 200, "requester": "tax-authority"}'
PADDING = [(f"X-Padding-{n}", "p" * 1000) for n in range(20)]
FB_KEYS = "/v1/agencies/family-benefits/keys"

HAND_WRITTEN = [
    # Bodies that are not JSON, or not I-JSON.
    exchange("not JSON", b"{", MALFORMED),
    exchange("empty body", b"", MALFORMED),
    exchange("a JSON array", b"[]", INVALID),
    exchange("a UTF-8 byte order mark", b"\xef\xbb\xbf" + json.dumps(WHITE).encode(), MALFORMED),
    exchange("UTF-16", json.dumps(WHITE).encode("utf-16"), MALFORMED, content_type="application/json; charset=utf-16"),
    exchange("invalid UTF-8", raw_exchange('"justification":"\xff"').replace(b"\xc3\xbf", b"\xff"), MALFORMED),
    exchange("NaN", raw_exchange('"params":{"x":NaN}'), MALFORMED),
    exchange("-Infinity", raw_exchange('"params":{"x":-Infinity}'), MALFORMED),
    exchange("a member named twice", raw_exchange(f'"subject":"{PIETER}"'), INVALID),
    exchange("a number beyond a double", raw_exchange('"params":{"x":1e400}'), INVALID),
    exchange("an integer beyond 2**53", raw_exchange('"params":{"x":9007199254740993}'), INVALID),
    exchange("a 5000-digit integer", raw_exchange('"params":{"x":' + "9" * 5000 + "}"), INVALID),
    exchange("params nested 40 deep", nested(40), INVALID),
    exchange("params nested 30000 deep", nested(30000), INVALID),
    exchange("NUL in a param", {**WHITE, "params": {"x": "a\u0000b"}}, INVALID),
    exchange("NUL in a member name", {**WHITE, "params": {"a\u0000": 1}}, INVALID),
    exchange("an unpaired surrogate", raw_exchange('"justification":"\\ud800"'), INVALID),
    # Fields: unknown, mistyped, absurd.
    exchange_with("an unknown field", INVALID, requester="tax-authority"),
    exchange_with("subject a number", INVALID, subject=85073003328),
    exchange_with("subject null", INVALID, subject=None),
    exchange_with("subject a list", INVALID, subject=[ANNA]),
    exchange_with("params a string", INVALID, params="year=2025"),
    exchange_with("review an object", INVALID, review={"id": NOBODY}),
    exchange_with("a 65-character subject", INVALID, subject="8" * 65),
    exchange_with("a 60 KiB justification", INVALID, justification="j" * 60_000),
    exchange_with("a 41-character review id", INVALID, review="r" * 41),
    exchange_with("emergency with an extra member", INVALID, emergency={"reason": "fire", "override": True}),
    exchange_with("emergency with an empty reason", INVALID, emergency={"reason": " "}),
    # Unicode confusables and control characters in ids.
    exchange_with("full-width digits in the subject", INVALID, subject="\uff18\uff15\uff10\uff17\uff13"),
    exchange_with("a Cyrillic a in the category", INVALID, category="civil-st\u0430tus"),
    exchange_with("a zero-width space in the purpose", INVALID, purpose="benefit\u200beligibility"),
    exchange_with("a right-to-left override in the subject", INVALID, subject="\u202e82333003758"),
    exchange_with("a trailing newline in the category", INVALID, category="civil-status\n"),
    exchange_with("an uppercase category", INVALID, category="CIVIL-STATUS"),
    exchange_with("a tab in the subject", INVALID, subject="8507\t3003328"),
    # Injection strings.
    exchange_with("SQL in the subject", INVALID, subject=SQL),
    exchange_with("SQL in the category", INVALID, category=SQL),
    exchange_with("SQL in the purpose", INVALID, purpose=SQL),
    exchange_with("a log line in the subject", INVALID, subject=ANNA + LOG_LINE),
    exchange_with("a log line in the purpose", INVALID, purpose="benefit-eligibility" + LOG_LINE),
    # Well-formed questions the hub must still refuse.
    exchange_with("an unregistered purpose", (422, "unknown-purpose"), purpose="curiosity"),
    exchange_with("a subject without relationship", (403, "no-relationship"), subject="00000000000"),
    exchange_with("the black zone", (403, "black-zone"), category="health-record"),
    exchange_with("an unregistered category", (404, "unknown-category"), category="dna-profile"),
    exchange_with("emergency where no rule allows it", (403, "emergency-not-allowed"), emergency={"reason": "fire"}),
    exchange_with(
        "a review that does not exist",
        (404, "unknown-review"),
        category="employment-status",
        subject=JAN,
        review=NOBODY,
    ),
    # Content types and codings.
    exchange("text/plain", WHITE, (415, "unsupported-media-type"), content_type="text/plain"),
    exchange("a form", WHITE, (415, "unsupported-media-type"), content_type="application/x-www-form-urlencoded"),
    exchange(
        "application/json-patch+json",
        WHITE,
        (415, "unsupported-media-type"),
        content_type="application/json-patch+json",
    ),
    exchange("gzip", WHITE, (415, "unsupported-media-type"), headers=[("Content-Encoding", "gzip")], body_read=False),
    exchange("Content-Type twice", WHITE, UNPARSEABLE, headers=[("Content-Type", "text/plain")]),
    exchange(
        "Content-Digest twice",
        WHITE,
        (401, "bad-signature"),
        headers=[("Content-Digest", content_digest(b"{}"))],
        body_read=False,
    ),
    # Sizes.
    exchange("a body over 64 KiB", {**WHITE, "justification": "j" * 70_000}, (413, "too-large"), body_read=False),
    exchange("a 20 KiB header section", WHITE, (431, "headers-too-large"), headers=PADDING, body_read=False),
    exchange("a 40 KiB header line", WHITE, UNPARSEABLE, headers=[("X-Padding", "p" * 40_000)]),
    exchange("120 header lines", WHITE, UNPARSEABLE, headers=[(f"X-{n}", "1") for n in range(120)]),
    request(
        "a 9 KiB request line",
        "privacy-office",
        "GET",
        "/v1/audit?subject=" + "s" * 9000,
        None,
        UNPARSEABLE,
    ),
    # Request targets: dot segments, empty segments, percent-encoding, absolute form, case.
    request("exchange: /v1/../v1/exchanges", "family-benefits", "POST", "/v1/../v1/exchanges", WHITE, NOT_FOUND),
    request("exchange: /v1//exchanges", "family-benefits", "POST", "/v1//exchanges", WHITE, NOT_FOUND),
    request("exchange: //v1/exchanges", "family-benefits", "POST", "//v1/exchanges", WHITE, NOT_FOUND),
    request("exchange: a trailing slash", "family-benefits", "POST", "/v1/exchanges/", WHITE, NOT_FOUND),
    request("exchange: an encoded letter", "family-benefits", "POST", "/v1/%65xchanges", WHITE, NOT_FOUND),
    request("exchange: an encoded slash", "family-benefits", "POST", "/v1%2Fexchanges", WHITE, NOT_FOUND),
    request("exchange: a matrix parameter", "family-benefits", "POST", "/v1/exchanges;x=1", WHITE, NOT_FOUND),
    # An absolute-form target cannot be signed as @target-uri (the hub's URL followed by it): never verifies.
    request(
        "exchange: absolute form",
        "family-benefits",
        "POST",
        "http://evil.example/v1/exchanges",
        WHITE,
        (401, "bad-signature"),
        signed_target="/v1/exchanges",
    ),
    request("exchange: uppercase path", "family-benefits", "POST", "/V1/EXCHANGES", WHITE, (403, "forbidden")),
    request("exchange: a NUL in the query", "family-benefits", "POST", "/v1/exchanges?x=%00", WHITE, INVALID),
    portal("subject: encoded ../", "/v1/subjects/..%2Fpolicies/consents", NOT_FOUND),
    portal("subject: encoded ..", "/v1/subjects/%2e%2e/consents", NOT_FOUND),
    portal("subject: .", "/v1/subjects/./consents", NOT_FOUND),
    portal("subject: ..", "/v1/subjects/../consents", NOT_FOUND),
    portal("subject: an encoded NUL", f"/v1/subjects/{ANNA}%00/consents", NOT_FOUND),
    portal("subject: an encoded CRLF header", f"/v1/subjects/{ANNA}%0d%0aX-Injected:%201/consents", NOT_FOUND),
    portal("subject: SQL quotes", "/v1/subjects/1'OR'1'='1/consents", NOT_FOUND),
    portal("subject: 65 digits", f"/v1/subjects/{'8' * 65}/consents", INVALID),
    portal("subject: an underscore", "/v1/subjects/85_07/access-log", INVALID),
    portal("subject: full-width digits, encoded", "/v1/subjects/%EF%BC%98%EF%BC%95/consents", NOT_FOUND),
    portal("subject: a query parameter the endpoint does not take", f"/v1/subjects/{ANNA}/access-log?x=1", INVALID),
    portal("access log: a forged cursor", f"/v1/subjects/{ANNA}/access-log?cursor=" + "A" * 100, INVALID),
    # Ids in paths: absurd lengths and shapes, never reaching the audit record or the store.
    admin(
        "withdraw: a 300-character consent id",
        "POST",
        f"/v1/consents/{'c' * 300}/withdraw",
        None,
        (404, "unknown-consent"),
    ),
    admin("withdraw: an unknown consent", "POST", f"/v1/consents/{NOBODY}/withdraw", None, (404, "unknown-consent")),
    admin("lift: a 41-character refusal id", "POST", f"/v1/refusals/{'r' * 41}/lift", None, (404, "unknown-refusal")),
    admin("withdraw: an unknown channel", "POST", f"/v1/consents/{NOBODY}/withdraw?channel=pigeon", None, INVALID),
    officer(
        "decide: an id with an underscore",
        "POST",
        "/v1/reviews/a_b/decision",
        {"decision": "approve", "reason": "x"},
        (404, "unknown-review"),
    ),
    admin("remove rule: a 64-character id", "DELETE", f"/v1/policies/{'r' * 64}", {"reason": "x"}, NOT_FOUND),
    admin("remove rule: an unknown rule", "DELETE", "/v1/policies/r-nobody", {"reason": "x"}, NOT_FOUND),
    admin("accept: an unknown proposal", "POST", f"/v1/policies/proposals/{NOBODY}/accept", {"reason": "x"}, NOT_FOUND),
    officer(
        "propose: an unknown review", "POST", f"/v1/reviews/{NOBODY}/propose", {"reason": "x"}, (404, "unknown-review")
    ),
    # Query parameters.
    officer("audit: a NUL in a filter", "GET", "/v1/audit?subject=%00", None, INVALID),
    officer("audit: a filter named twice", "GET", f"/v1/audit?subject={ANNA}&subject={PIETER}", None, INVALID),
    officer("audit: a superscript-two limit", "GET", "/v1/audit?limit=%C2%B2", None, INVALID),
    officer("audit: a limit of 99999", "GET", "/v1/audit?limit=99999", None, INVALID),
    officer("audit: a 5000-digit limit", "GET", "/v1/audit?limit=" + "9" * 5000, None, INVALID),
    officer("audit: a forged cursor", "GET", "/v1/audit?cursor=garbage", None, INVALID),
    officer("audit: an unknown filter", "GET", "/v1/audit?password=1", None, INVALID),
    officer("audit: a date that is not one", "GET", "/v1/audit?since=yesterday", None, INVALID),
    officer("audit: year 1 at +14:00", "GET", "/v1/audit?since=0001-01-01T00:00:00%2B14:00", None, INVALID),
    officer(
        "audit: a log line in a filter",
        "GET",
        "/v1/audit?requester=x%0A%7B%22event%22%3A%22forged%22%7D",
        None,
        INVALID,
    ),
    officer("audit: SQL in a filter finds nothing", "GET", "/v1/audit?subject=x'%20OR%20'1'%3D'1", None, (200, None)),
    officer("audit: a 200-character filter", "GET", "/v1/audit?subject=" + "s" * 200, None, INVALID),
    officer("verify: a query parameter", "GET", "/v1/audit/verify?full=1", None, INVALID),
    officer(
        "anomalies: until before since",
        "GET",
        "/v1/audit/anomalies?since=2026-02-01T00:00:00Z&until=2026-01-01T00:00:00Z",
        None,
        INVALID,
    ),
    officer("reviews: an unknown status", "GET", "/v1/reviews?status=all", None, INVALID),
    admin("proposals: an unknown status", "GET", "/v1/policies/proposals?status=all", None, INVALID),
    admin("changes: an unknown status", "GET", "/v1/policies/changes?status=all", None, INVALID),
    admin("approve: an unknown change", "POST", f"/v1/policies/changes/{NOBODY}/approve", {"reason": "x"}, NOT_FOUND),
    admin("dry run: since not a time", "POST", f"/v1/policies/changes/{NOBODY}/evaluate", {"since": 7}, INVALID),
    # Consents and refusals.
    admin("consent: a NUL in the evidence", "POST", "/v1/consents", consent(evidence="form\u0000"), INVALID),
    admin("consent: 10000 characters of evidence", "POST", "/v1/consents", consent(evidence="e" * 10_000), INVALID),
    admin("consent: SQL as grantee", "POST", "/v1/consents", consent(grantee=SQL), INVALID),
    admin("consent: a status field", "POST", "/v1/consents", consent(status="withdrawn"), INVALID),
    admin("consent: categories a string", "POST", "/v1/consents", consent(categories="income"), INVALID),
    admin("consent: an unregistered category", "POST", "/v1/consents", consent(categories=["dna-profile"]), INVALID),
    admin(
        "consent: valid_until in the past", "POST", "/v1/consents", consent(valid_until="2020-01-01T00:00:00Z"), INVALID
    ),
    admin(
        "consent: year 1 at +14:00", "POST", "/v1/consents", consent(valid_from="0001-01-01T00:00:00+14:00"), INVALID
    ),
    admin(
        "consent: year 9999 at -14:00",
        "POST",
        "/v1/consents",
        consent(valid_until="9999-12-31T23:59:59-14:00"),
        INVALID,
    ),
    admin("consent: a confusable subject", "POST", "/v1/consents", consent(subject="\u0665\u0660"), INVALID),
    admin(
        "refusal: a confusable agency",
        "POST",
        "/v1/refusals",
        {"subject": ANNA, "agency": "t\u0430x-authority"},
        INVALID,
    ),
    admin(
        "refusal: a log line as channel",
        "POST",
        "/v1/refusals",
        {"subject": ANNA, "agency": "tax-authority", "channel": "portal" + LOG_LINE},
        INVALID,
    ),
    request(
        "consent: text/plain",
        "admin-desk",
        "POST",
        "/v1/consents",
        consent(),
        (415, "unsupported-media-type"),
        content_type="text/plain",
    ),
    # Policies.
    admin("rule: SQL as its id", "POST", "/v1/policies", rule(id=SQL), INVALID),
    admin("rule: a purple zone", "POST", "/v1/policies", rule(zone="purple"), INVALID),
    admin("rule: fields a string", "POST", "/v1/policies", rule(fields="name"), INVALID),
    admin("rule: white without a ground", "POST", "/v1/policies", rule(ground=None), INVALID),
    admin("rule: a blank ground", "POST", "/v1/policies", rule(ground="   "), INVALID),
    admin("rule: a ground of 501 characters", "POST", "/v1/policies", rule(ground="g" * 501), INVALID),
    admin("rule: a ground with a newline", "POST", "/v1/policies", rule(ground="art. 1\nart. 2"), INVALID),
    admin("rule: a ground not text", "POST", "/v1/policies", rule(ground=["art. 1"]), INVALID),
    admin("rule: a NUL in the reason", "POST", "/v1/policies", {**rule(), "reason": "\u0000"}, INVALID),
    admin("rule: a 1001-character reason", "POST", "/v1/policies", {**rule(), "reason": "r" * 1001}, INVALID),
    admin("rule: no reason", "POST", "/v1/policies", {"rule": rule()["rule"]}, INVALID),
    admin("rollback: version a string", "POST", "/v1/policies/rollback", {"version": "1", "reason": "x"}, INVALID),
    admin("rollback: version 1.5", "POST", "/v1/policies/rollback", {"version": 1.5, "reason": "x"}, INVALID),
    admin("rollback: version true", "POST", "/v1/policies/rollback", {"version": True, "reason": "x"}, INVALID),
    admin("rollback: version 0", "POST", "/v1/policies/rollback", {"version": 0, "reason": "x"}, INVALID),
    admin("rollback: version 2**31", "POST", "/v1/policies/rollback", {"version": 2**31, "reason": "x"}, INVALID),
    admin(
        "rollback: version 10**30",
        "POST",
        "/v1/policies/rollback",
        b'{"version": 1000000000000000000000000000000, "reason": "x"}',
        INVALID,
    ),
    admin(
        "rollback: a version that does not exist",
        "POST",
        "/v1/policies/rollback",
        {"version": 999, "reason": "x"},
        NOT_FOUND,
    ),
    officer(
        "evaluate: an extra field",
        "POST",
        "/v1/policies/evaluate",
        {"requester": "a", "category": "b", "purpose": "c", "zone": "white"},
        INVALID,
    ),
    officer(
        "evaluate: SQL as requester decides black",
        "POST",
        "/v1/policies/evaluate",
        {"requester": SQL, "category": "income", "purpose": "x"},
        (200, None),
    ),
    # Reviews.
    officer("decide: maybe", "POST", f"/v1/reviews/{NOBODY}/decision", {"decision": "maybe", "reason": "x"}, INVALID),
    officer(
        "decide: an extra field",
        "POST",
        f"/v1/reviews/{NOBODY}/decision",
        {"decision": "approve", "reason": "x", "by": "admin"},
        INVALID,
    ),
    officer(
        "decide: a 2001-character reason",
        "POST",
        f"/v1/reviews/{NOBODY}/decision",
        {"decision": "approve", "reason": "r" * 2001},
        INVALID,
    ),
    # Notifications.
    request(
        "publish: a NUL in the ref",
        "population-register",
        "POST",
        "/v1/notifications",
        notification(ref="\u0000"),
        INVALID,
    ),
    request(
        "publish: an unknown field",
        "population-register",
        "POST",
        "/v1/notifications",
        notification(data={"name": "Anna"}),
        INVALID,
    ),
    request(
        "publish: a category it does not hold",
        "population-register",
        "POST",
        "/v1/notifications",
        notification(category="income"),
        (403, "not-holder"),
    ),
    request(
        "publish: SQL as subject",
        "population-register",
        "POST",
        "/v1/notifications",
        notification(subject=SQL),
        INVALID,
    ),
    admin(
        "replay: a delivery id of 2**31",
        "POST",
        "/v1/notifications/dead-letters/replay",
        {"deliveries": [2**31]},
        INVALID,
    ),
    admin(
        "replay: a negative delivery id", "POST", "/v1/notifications/dead-letters/replay", {"deliveries": [-1]}, INVALID
    ),
    admin(
        "replay: a delivery id a string",
        "POST",
        "/v1/notifications/dead-letters/replay",
        {"deliveries": ["1"]},
        INVALID,
    ),
    admin("replay: deliveries not a list", "POST", "/v1/notifications/dead-letters/replay", {"deliveries": 1}, INVALID),
    request(
        "opt out: an uppercase category", "family-benefits", "PUT", "/v1/notifications/opt-outs/INCOME", None, INVALID
    ),
    request(
        "opt out: an unregistered category",
        "family-benefits",
        "PUT",
        "/v1/notifications/opt-outs/dna-profile",
        None,
        (404, "unknown-category"),
    ),
    request(
        "opt out: an encoded category", "family-benefits", "PUT", "/v1/notifications/opt-outs/in%63ome", None, NOT_FOUND
    ),
    # Keys.
    admin("register: not a PEM", "POST", FB_KEYS, {"key_id": "fb-new", "public_key_pem": "not a key"}, INVALID),
    admin(
        "register: a private key",
        "POST",
        FB_KEYS,
        {
            "key_id": "fb-new",
            "public_key_pem": "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIA==\n-----END PRIVATE KEY-----\n",
        },
        INVALID,
    ),
    admin("register: a key id with a space", "POST", FB_KEYS, {"key_id": "fb new", "public_key_pem": "x"}, INVALID),
    admin(
        "register: an unknown field",
        "POST",
        FB_KEYS,
        {"key_id": "fb-new", "public_key_pem": "x", "status": "active"},
        INVALID,
    ),
    admin(
        "register: a negative overlap",
        "POST",
        FB_KEYS,
        {"key_id": "fb-new", "public_key_pem": "x", "overlap_s": -1},
        INVALID,
    ),
    admin(
        "register: for an unknown agency",
        "POST",
        "/v1/agencies/nobody/keys",
        {"key_id": "fb-new", "public_key_pem": "x"},
        NOT_FOUND,
    ),
    admin(
        "register: for an uppercase agency",
        "POST",
        "/v1/agencies/FAMILY-BENEFITS/keys",
        {"key_id": "fb-new", "public_key_pem": "x"},
        NOT_FOUND,
    ),
    admin("list: an unknown agency", "GET", "/v1/agencies/nobody/keys", None, NOT_FOUND),
    admin(
        "revoke: another agency's key through this agency",
        "POST",
        "/v1/agencies/tax-authority/keys/family-benefits-2026/revoke",
        {"reason": "x"},
        NOT_FOUND,
    ),
    admin(
        "revoke: an unknown key",
        "POST",
        "/v1/agencies/family-benefits/keys/nobody-2026/revoke",
        {"reason": "x"},
        NOT_FOUND,
    ),
    admin(
        "revoke: without a reason", "POST", "/v1/agencies/family-benefits/keys/family-benefits-2026/revoke", {}, INVALID
    ),
    admin(
        "revoke: a revoked key again",
        "POST",
        "/v1/agencies/family-benefits/keys/family-benefits-revoked/revoke",
        {"reason": "x"},
        (409, "conflict"),
    ),
    admin(
        "register: a taken key id",
        "POST",
        FB_KEYS,
        {"key_id": "family-benefits-2026", "public_key_pem": FRESH},
        (409, "conflict"),
    ),
    admin("register: an RSA key", "POST", FB_KEYS, {"key_id": "fb-new", "public_key_pem": RSA}, INVALID),
    admin(
        "register: valid_until in the past",
        "POST",
        FB_KEYS,
        {"key_id": "fb-new", "public_key_pem": FRESH, "valid_until": "2020-01-01T00:00:00Z"},
        INVALID,
    ),
    admin(
        "register: valid_from in year 1",
        "POST",
        FB_KEYS,
        {"key_id": "fb-new", "public_key_pem": FRESH, "valid_from": "0001-01-01T00:00:00+14:00"},
        INVALID,
    ),
    admin(
        "register: an overlap of 10**9 s",
        "POST",
        FB_KEYS,
        {"key_id": "fb-new", "public_key_pem": FRESH, "overlap_s": 10**9},
        INVALID,
    ),
    Case(
        "register: another agency's public key",
        lambda h: [
            signed(
                h,
                "admin-desk-2026",
                "POST",
                FB_KEYS,
                json.dumps(
                    {"key_id": "fb-copy", "public_key_pem": public_key_pem(h.key_of("tax-authority").public_key)}
                ).encode(),
            )
        ],
        ((409, "conflict"),),
    ),
    # A control row: a harmless read goes through and changes nothing either.
    admin("policies: an ordinary read", "GET", "/v1/policies", None, (200, None)),
    Case(
        "policies: a signature that expires in a minute",
        lambda h: [signed(h, "admin-desk-2026", "GET", "/v1/policies", None, Signing(expires=ago(-60)))],
        ((200, None),),
    ),
]

CASES = generated() + HAND_WRITTEN


def served_routes() -> web.Application:
    app = web.Application()
    add_routes(app)
    return app


def canonical(app: web.Application, method: str, target: str) -> str:
    """The template of the route aiohttp resolves a concrete target of ROUTES to (the first that matches)."""
    for route in app.router.routes():
        info = route.resource.get_info() if route.resource is not None else {}
        matches = info.get("path") == target or ("pattern" in info and info["pattern"].fullmatch(target))
        if route.method == method and matches and route.resource is not None:
            return route.resource.canonical
    return target


def test_the_corpus_covers_every_route_the_hub_serves() -> None:
    """Every v1 route registered is attacked; a new route fails here until it has its row in ROUTES."""
    app = served_routes()
    served = {
        (route.method, route.resource.canonical)
        for route in app.router.routes()
        if route.method != "HEAD" and route.resource is not None and route.resource.canonical.startswith("/v1/")
    }
    assert served == {(route.method, canonical(app, route.method, route.target)) for route in ROUTES}
    assert len(CASES) >= 200


@pytest.mark.asyncio(loop_scope="module")
@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
async def test_hostile_input_is_refused_audited_and_changes_nothing(case: Case, hostile: Hostile) -> None:
    await run(case, hostile)


@pytest.mark.postgres
@pytest.mark.asyncio(loop_scope="module")
@pytest.mark.parametrize("case", HAND_WRITTEN, ids=[case.id for case in HAND_WRITTEN])
async def test_hostile_input_on_postgresql(case: Case, hostile_postgres: Hostile) -> None:
    """The rows about values (ids, strings, numbers, dates) again on PostgreSQL, which refuses in its own ways
    what SQLite stores (a NUL, a string longer than its column, an integer beyond 32 bits)."""
    await run(case, hostile_postgres)


async def run(case: Case, hostile: Hostile) -> None:
    hub = hostile.world.hub
    before, seq = await snapshot(hub), await last_seq(hub)
    sent = case.forge(hostile)
    answers = [await send(hostile.port, one.method, one.target, one.headers, one.body) for one in sent]
    assert [(answer.status, answer.problem) for answer in answers] == list(case.answers), answers[-1].body[:300]
    records = await records_after(hub, seq)
    assert len(records) == len(sent)
    for record, one, answer in zip(records, sent, answers, strict=True):
        assert_recorded(record, one, answer)
    after = await snapshot(hub)
    assert not before.changed(after), f"state changed: {before.changed(after)}"


def assert_recorded(record: dict[str, Any], sent: Sent, answer: Answer) -> None:
    """The attempt's one audit record says what was answered, to which request; never more."""
    assert record["status"] == answer.status
    assert record["reason"] == answer.problem
    path = sent.target.split("?")[0] if sent.target.startswith("/") else URL(sent.target, encoded=True).path
    # What the HTTP parser refused has no path the hub read.
    assert record["kind"] == ("http" if answer.problem == "unparseable-request" else kind_of(unquote(path)))
    assert record["response_digest"] == digest(answer.body)
    if record["request_digest"] is not None:
        assert record["request_digest"] == digest(sent.body or b"")
    if answer.problem is not None and "exchange" in answer.json():
        assert record["exchange"] == answer.json()["exchange"]


CONSOLE_DETOURS = [
    "/console/../v1/exchanges",
    "/console/%2e%2e/v1/exchanges",
    "/console%2F..%2Fv1%2Fexchanges",
    "/console/..%2Fv1%2Fexchanges",
    "/console//v1/exchanges",
]


@pytest.mark.asyncio(loop_scope="module")
@pytest.mark.parametrize("target", CONSOLE_DETOURS)
async def test_the_consoles_unsigned_paths_lead_to_no_api_handler(target: str, hostile: Hostile) -> None:
    """The console's paths skip the signed API's middleware (browser sessions); no path that the console
    claims may route an unsigned request to an API handler."""
    hub = hostile.world.hub
    before, seq = await snapshot(hub), await last_seq(hub)
    body = json.dumps(WHITE).encode()
    answer = await send(hostile.port, "POST", target, [("Content-Type", "application/json")], body)
    assert answer.status in (303, 400, 401, 403, 404, 405), answer.body[:300]
    assert not [record for record in await records_after(hub, seq) if record["kind"] == "exchange"]
    assert not before.changed(await snapshot(hub))
