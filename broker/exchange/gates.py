"""The exchange's pure steps: validating the request, the zone, emergency and consent gates, and when an
agency's emergency allowance starts again. Each is a function of its inputs that returns what the exchange
goes on with or raises the problem (broker.base.errors) that stops it; the pipeline does the I/O around them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from typing import Any

from broker.base import errors
from consent.matching import Consent, Refusal, blocking_refusal, covering_consent
from directory.names import NAME, SUBJECT
from policies.rules import Decision

EXCHANGE_FIELDS = {"subject", "category", "purpose", "params", "review", "justification", "emergency"}
MAX_JUSTIFICATION = 2000
MAX_EMERGENCY_REASON = 1000


@dataclass(frozen=True)
class ExchangeRequest:
    subject: str
    category: str
    purpose: str
    params: dict[str, Any] = field(default_factory=dict)
    review: str | None = None
    justification: str | None = None
    emergency: str | None = None  # the reason given for a break-the-glass access; None: an ordinary exchange


def validate(document: dict[str, Any]) -> ExchangeRequest:
    unknown = sorted(set(document) - EXCHANGE_FIELDS)
    if unknown:
        raise errors.Invalid(f"unknown fields: {', '.join(unknown)}")
    subject = document.get("subject")
    if not isinstance(subject, str) or not SUBJECT.fullmatch(subject):
        raise errors.Invalid("subject must be 1 to 64 characters of [0-9A-Za-z.-]")
    category, purpose = _name(document, "category"), _name(document, "purpose")
    params = document.get("params", {})
    if not isinstance(params, dict):
        raise errors.Invalid("params must be an object")
    review = document.get("review")
    if review is not None and (not isinstance(review, str) or len(review) > 40):
        raise errors.Invalid("review must be a review id")
    justification = document.get("justification")
    if justification is not None and (not isinstance(justification, str) or len(justification) > MAX_JUSTIFICATION):
        raise errors.Invalid(f"justification must be text of at most {MAX_JUSTIFICATION} characters")
    emergency = document.get("emergency")
    if emergency is not None:
        emergency = emergency_reason(emergency)
    return ExchangeRequest(subject, category, purpose, params, review, justification, emergency)


def _name(document: dict[str, Any], field: str) -> str:
    value = document.get(field)
    if not isinstance(value, str) or not NAME.fullmatch(value):
        raise errors.Invalid(f"{field} must be a name of [a-z0-9-], at most 63 characters")
    return value


def emergency_reason(value: object) -> str:
    """The reason of an `"emergency": {"reason": "..."}` member."""
    reason = value.get("reason") if isinstance(value, dict) and set(value) == {"reason"} else None
    if not isinstance(reason, str) or not reason.strip() or len(reason) > MAX_EMERGENCY_REASON:
        raise errors.Invalid(
            f'emergency must be {{"reason": "..."}}, a reason of 1 to {MAX_EMERGENCY_REASON} characters'
        )
    return reason


def zone_gate(decision: Decision) -> None:
    """Black stops here; grey and white go on."""
    if decision.zone == "black":
        rule = "no rule matches" if decision.rule is None else f"rule {decision.rule.id}"
        raise errors.BlackZone(f"the sharing policy forbids this exchange ({rule}, version {decision.version})")


def emergency_gate(decision: Decision, request: ExchangeRequest) -> None:
    """An emergency access is allowed only where the deciding rule says so."""
    if request.emergency is not None and (decision.rule is None or not decision.rule.emergency):
        rule = "no rule" if decision.rule is None else f"rule {decision.rule.id}"
        raise errors.EmergencyNotAllowed(f"{rule} (version {decision.version}) does not allow emergency access")


def consent_gate(
    consents: list[Consent], refusals: list[Refusal], requester: str, request: ExchangeRequest, at: datetime
) -> Consent | Refusal:
    """The consent the exchange goes on under, or the refusal that stops it (which beats any consent)."""
    refusal = blocking_refusal(refusals, requester, request.category, at)
    if refusal is not None:
        return refusal
    consent = covering_consent(consents, requester, request.category, request.purpose, at)
    if consent is None:
        raise errors.NoConsent(
            f"no active consent lets {requester!r} receive {request.category!r} for {request.purpose!r}"
        )
    return consent


@dataclass(frozen=True)
class BrokenGlass:
    """An emergency access let through: the refusal it overrides, if any, and the uses left today."""

    overridden: Refusal | None
    remaining: int


def seconds_to_next_day(at: datetime) -> int:
    """Until the next UTC midnight, when each agency's count of emergency accesses starts again."""
    midnight = datetime.combine(at.astimezone(UTC).date() + timedelta(days=1), time(), UTC)
    return max(1, math.ceil((midnight - at).total_seconds()))
