"""The hub's Prometheus metrics, in a registry of its own per hub (so tests and processes never share one)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.calls = Counter(
            "crossroads_calls", "Answered calls by audit kind and outcome", ["kind", "outcome"], registry=self.registry
        )
        self.notifications_pending = Gauge(
            "crossroads_notifications_pending", "Deliveries waiting in the outbox", registry=self.registry
        )
        self.notifications_delivered = Counter(
            "crossroads_notifications_delivered", "Deliveries acknowledged by the recipient", registry=self.registry
        )
        self.notifications_retried = Counter(
            "crossroads_notifications_retried",
            "Delivery attempts that failed and will be retried",
            registry=self.registry,
        )
        self.notifications_dead = Counter(
            "crossroads_notifications_dead_lettered", "Deliveries moved to the dead-letter list", registry=self.registry
        )
        self.notification_latency = Histogram(
            "crossroads_notification_delivery_seconds",
            "From publication to acknowledgement",
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600),
            registry=self.registry,
        )

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
