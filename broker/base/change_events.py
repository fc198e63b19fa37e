"""A change notification as it travels from the hub to an agency's adapter: a CloudEvent 1.0 in structured JSON
mode, so that agencies route it with their own CloudEvents tooling; PROTOCOL.md's fields are the event's data.
Both ends read this one definition: the hub builds the event (broker/notifications/service.py), the agency SDK
reads it (adapters/server.py). The hub signs the event's body as it signs every request to an adapter."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime

from cloudevents.core.bindings.http import HTTPMessage, from_structured_event, to_structured_event
from cloudevents.core.v1.event import CloudEvent

EVENT_TYPE = "be.crossroads.subject.changed"


@dataclass(frozen=True)
class ChangeNotification:
    """What an agency is told: which holder's record of which person changed, never the data itself."""

    notification: str
    holder: str
    subject: str
    category: str
    event: str
    ref: str | None = None


def to_event(notice: ChangeNotification, at: datetime, hub_url: str) -> HTTPMessage:
    """The notice's event: its id is the notification's (one event however many recipients, so receivers
    deduplicate by source and id), its source the holder's entry in the hub's registry, its subject the person."""
    attributes = {
        "type": EVENT_TYPE,
        "source": f"{hub_url}/v1/agencies/{notice.holder}",
        "id": notice.notification,
        "subject": notice.subject,
        "time": at,
        "datacontenttype": "application/json",
    }
    return to_structured_event(CloudEvent(attributes, asdict(notice)))


def from_event(content_type: str, body: bytes) -> ChangeNotification:
    """The notice in a structured CloudEvent; ValueError if the body is not one of ours or its data is incomplete."""
    try:
        event = from_structured_event(HTTPMessage({"content-type": content_type}, body))
    except Exception as error:  # the library raises its own errors, and JSON's
        raise ValueError(f"not a CloudEvent: {error}") from error
    data = event.get_data()
    if event.get_type() != EVENT_TYPE or not isinstance(data, dict):
        raise ValueError(f"not a {EVENT_TYPE} event")
    names = ("notification", "holder", "subject", "category", "event")
    if not all(isinstance(data.get(name), str) for name in names) or not isinstance(data.get("ref"), str | None):
        raise ValueError("incomplete notification")
    return ChangeNotification(**{name: data[name] for name in (*names, "ref") if name in data})
