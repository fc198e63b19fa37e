"""The agency-side SDK: `HubClient` to ask the hub, `Adapter` to answer it, and example adapters."""

from adapters.client import ExchangeResult, HubClient, HubProblem
from adapters.server import Adapter, RecordRequest, UnknownSubject

__all__ = ["Adapter", "ExchangeResult", "HubClient", "HubProblem", "RecordRequest", "UnknownSubject"]
