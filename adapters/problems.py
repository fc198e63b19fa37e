"""The hub's problems as the client raises them: one exception class per problem type the hub answers
with (broker/base/errors.py), all subclasses of `HubProblem`, plus `PendingReview` for a grey-zone 202.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, ClassVar


class HubProblem(Exception):
    """The hub refused or failed the request; `name` is the last segment of the problem type."""

    problem: ClassVar[str] = ""

    def __init__(self, status: int, document: dict[str, Any], headers: Mapping[str, str] | None = None) -> None:
        self.status = status
        self.document = document
        self.headers = dict(headers or {})
        self.type = str(document.get("type", ""))
        self.name = self.type.rsplit("/", 1)[-1] if self.type else self.problem
        self.detail = str(document.get("detail", ""))
        self.exchange: str | None = document.get("exchange")
        super().__init__(f"{status} {self.name}: {self.detail}")

    @property
    def retry_after(self) -> float | None:
        """Seconds the hub asked the caller to wait (`Retry-After`, in seconds or as an HTTP date), if it said."""
        value = next((v for k, v in self.headers.items() if k.lower() == "retry-after"), None)
        if value is None:
            return None
        try:
            return max(0.0, float(value))
        except ValueError:
            pass
        try:
            return max(0.0, (parsedate_to_datetime(value) - datetime.now(UTC)).total_seconds())
        except (TypeError, ValueError):
            return None


class PendingReview(HubProblem):
    """A grey-zone exchange waits for a privacy officer (202), raised only when the caller asks for it."""

    problem = "pending-review"

    @property
    def review(self) -> str:
        return str(self.document["review"])


class Malformed(HubProblem):
    problem = "malformed"


class UnparseableRequest(HubProblem):
    problem = "unparseable-request"


class Unsigned(HubProblem):
    problem = "unsigned"


class BadSignature(HubProblem):
    problem = "bad-signature"


class BadDigest(HubProblem):
    problem = "bad-digest"


class UnknownKey(HubProblem):
    problem = "unknown-key"


class StaleSignature(HubProblem):
    problem = "stale-signature"


class ExpiredSignature(HubProblem):
    problem = "expired-signature"


class Forbidden(HubProblem):
    problem = "forbidden"


class Suspended(HubProblem):
    problem = "suspended"


class NotHolder(HubProblem):
    problem = "not-holder"


class NoRelationship(HubProblem):
    problem = "no-relationship"


class BlackZone(HubProblem):
    problem = "black-zone"


class NoConsent(HubProblem):
    problem = "no-consent"


class ConsentRefused(HubProblem):
    problem = "consent-refused"


class EmergencyNotAllowed(HubProblem):
    problem = "emergency-not-allowed"


class ReviewRejected(HubProblem):
    problem = "review-rejected"


class OwnChange(HubProblem):
    problem = "own-change"


class ReviewExpired(HubProblem):
    problem = "review-expired"


class ReviewUsed(HubProblem):
    problem = "review-used"


class NotFound(HubProblem):
    problem = "not-found"


class UnknownConsent(HubProblem):
    problem = "unknown-consent"


class UnknownRefusal(HubProblem):
    problem = "unknown-refusal"


class UnknownReview(HubProblem):
    problem = "unknown-review"


class UnknownCategory(HubProblem):
    problem = "unknown-category"


class NoHolder(HubProblem):
    problem = "no-holder"


class UnknownSubject(HubProblem):
    problem = "unknown-subject"


class MethodNotAllowed(HubProblem):
    problem = "method-not-allowed"


class Replay(HubProblem):
    problem = "replay"


class Conflict(HubProblem):
    problem = "conflict"


class TooLarge(HubProblem):
    problem = "too-large"


class HeadersTooLarge(HubProblem):
    problem = "headers-too-large"


class UnsupportedMediaType(HubProblem):
    problem = "unsupported-media-type"


class Invalid(HubProblem):
    problem = "invalid"


class UnknownPurpose(HubProblem):
    problem = "unknown-purpose"


class RateLimited(HubProblem):
    problem = "rate-limited"


class TooManyFailures(HubProblem):
    problem = "too-many-failures"


class EmergencyLimit(HubProblem):
    problem = "emergency-limit"


class BadHolderAnswer(HubProblem):
    problem = "bad-holder-answer"


class BadSeal(HubProblem):
    """The holder's sealed answer was not signed by it, or named another exchange, other fields or another key."""

    problem = "bad-seal"


class NoSealingKey(HubProblem):
    """The category is sealed and the requester has registered no valid sealing key (X25519) to receive it."""

    problem = "no-sealing-key"


class HolderUnreachable(HubProblem):
    problem = "holder-unreachable"


class Unavailable(HubProblem):
    problem = "unavailable"


class HolderTimeout(HubProblem):
    problem = "holder-timeout"


class Interrupted(HubProblem):
    """A batch's line whose holder was asked before the hub stopped, its answer not kept: ask for it again."""

    problem = "interrupted"


class Internal(HubProblem):
    problem = "internal"


BY_NAME: dict[str, type[HubProblem]] = {
    cls.problem: cls for cls in HubProblem.__subclasses__() if cls is not PendingReview
}


def problem_for(status: int, document: dict[str, Any], headers: Mapping[str, str] | None = None) -> HubProblem:
    """The typed exception for a problem document; a problem type this client does not know is a HubProblem."""
    name = str(document.get("type", "")).rsplit("/", 1)[-1]
    return BY_NAME.get(name, HubProblem)(status, document, headers)
