"""The hub's one error hierarchy: each error carries its HTTP status and its RFC 9457 problem type.

Handlers and pipeline steps raise these; broker/http/middleware.py's middleware turns them into problem documents.
"""

from __future__ import annotations

from typing import Any, ClassVar

PROBLEM_BASE = "https://crossroads.example/problems/"


class Problem(Exception):
    status: ClassVar[int] = 500
    name: ClassVar[str] = "internal"
    title: ClassVar[str] = "Internal error"

    def __init__(self, detail: str, headers: dict[str, str] | None = None, **extensions: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.headers = headers or {}
        self.extensions = extensions

    @property
    def type(self) -> str:
        return PROBLEM_BASE + self.name

    def document(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
            **self.extensions,
        }


def _problem(status: int, name: str, title: str) -> type[Problem]:
    return type(
        "".join(part.capitalize() for part in name.split("-")),
        (Problem,),
        {"status": status, "name": name, "title": title, "__doc__": title},
    )


Malformed = _problem(400, "malformed", "The request body is not valid JSON")
UnparseableRequest = _problem(400, "unparseable-request", "The HTTP server could not parse the request")
Unsigned = _problem(401, "unsigned", "The request is not signed")
BadSignature = _problem(401, "bad-signature", "The request signature does not verify")
BadDigest = _problem(401, "bad-digest", "The Content-Digest does not match the body")
UnknownKey = _problem(401, "unknown-key", "The signing key is unknown, revoked or expired")
StaleSignature = _problem(401, "stale-signature", "The signature was created too far from the hub clock")
ExpiredSignature = _problem(401, "expired-signature", "The signature has expired, or expires before it was created")
Forbidden = _problem(403, "forbidden", "This principal may not call this endpoint")
Suspended = _problem(403, "suspended", "The requesting agency is suspended")
NotHolder = _problem(403, "not-holder", "Only a holder of this category for this subject may notify its changes")
NoRelationship = _problem(403, "no-relationship", "The requester has no current relationship with the subject")
BlackZone = _problem(403, "black-zone", "The sharing policy forbids this exchange")
NoConsent = _problem(403, "no-consent", "No consent covers this exchange")
ConsentRefused = _problem(403, "consent-refused", "The subject refused sharing this with the requester")
EmergencyNotAllowed = _problem(403, "emergency-not-allowed", "The sharing rule does not allow emergency access")
ReviewRejected = _problem(403, "review-rejected", "A privacy officer rejected this exchange")
ReviewExpired = _problem(403, "review-expired", "The approved review has expired")
NoSealingKey = _problem(403, "no-sealing-key", "The requester has no sealing key to receive a sealed category")
OwnChange = _problem(403, "own-change", "A change of the sharing rules is approved by another administrator")
NotFound = _problem(404, "not-found", "No such resource")
UnknownConsent = _problem(404, "unknown-consent", "No such consent")
UnknownRefusal = _problem(404, "unknown-refusal", "No such refusal")
UnknownReview = _problem(404, "unknown-review", "No such review for this exchange")
UnknownCategory = _problem(404, "unknown-category", "The data category is not registered")
NoHolder = _problem(404, "no-holder", "No agency holds this category for this subject")
UnknownSubject = _problem(404, "unknown-subject", "The holder does not know this subject")
MethodNotAllowed = _problem(405, "method-not-allowed", "Method not allowed on this resource")
Replay = _problem(409, "replay", "This signature nonce was already used")
Conflict = _problem(409, "conflict", "The request conflicts with the resource's state")
ReviewUsed = _problem(409, "review-used", "The approved review was already used for an exchange")
TooLarge = _problem(413, "too-large", "The request body is too large")
HeadersTooLarge = _problem(431, "headers-too-large", "The request's header section is too large")
UnsupportedMediaType = _problem(415, "unsupported-media-type", "The request body must be application/json")
Invalid = _problem(422, "invalid", "The request is well-formed JSON but not a valid request")
UnknownPurpose = _problem(422, "unknown-purpose", "The purpose is not in the registered vocabulary")
RateLimited = _problem(429, "rate-limited", "Too many requests from this agency")
TooManyFailures = _problem(429, "too-many-failures", "Too many refused requests from this address")
EmergencyLimit = _problem(429, "emergency-limit", "The agency has used all its emergency accesses for today")
BadHolderAnswer = _problem(502, "bad-holder-answer", "The holder's adapter answered badly")
BadSeal = _problem(502, "bad-seal", "The holder's sealed answer is not what the hub asked for")
HolderUnreachable = _problem(502, "holder-unreachable", "The holder's adapter could not be reached")
Unavailable = _problem(503, "unavailable", "The hub cannot reach its store or write its audit log; it fails closed")
Interrupted = _problem(
    503, "interrupted", "The hub stopped after asking the holder; the answer was not kept: ask again"
)
HolderTimeout = _problem(504, "holder-timeout", "The holder's adapter did not answer in time")

SIGNATURE_PROBLEMS: dict[str, type[Problem]] = {
    "unsigned": Unsigned,
    "bad-signature": BadSignature,
    "bad-digest": BadDigest,
    "stale-signature": StaleSignature,
    "expired-signature": ExpiredSignature,
}

ALL: tuple[type[Problem], ...] = tuple(
    value for value in list(globals().values()) if isinstance(value, type) and issubclass(value, Problem)
)
