"""The agency-side SDK: `HubClient` to ask the hub, `Adapter` to answer it, store adapters over databases,
export files and REST services (`adapters.stores`), typed problems (`adapters.problems`), and examples.
"""

from adapters.client import ExchangeResult, HubClient, RetryPolicy, UnverifiedAnswer
from adapters.problems import BlackZone, HubProblem, NoConsent, NoRelationship, PendingReview, RateLimited, Replay
from adapters.server import Adapter, Notification, RecordRequest, StoreUnavailable, UnknownSubject
from adapters.validation import InvalidParams

__all__ = [
    "Adapter",
    "BlackZone",
    "ExchangeResult",
    "HubClient",
    "HubProblem",
    "InvalidParams",
    "NoConsent",
    "NoRelationship",
    "Notification",
    "PendingReview",
    "RateLimited",
    "RecordRequest",
    "Replay",
    "RetryPolicy",
    "StoreUnavailable",
    "UnknownSubject",
    "UnverifiedAnswer",
]
