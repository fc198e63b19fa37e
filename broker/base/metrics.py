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

        self.exchanges = Counter(
            "crossroads_exchanges",
            "Exchanges answered, by outcome and zone",
            ["outcome", "zone"],
            registry=self.registry,
        )
        self.added_latency = Histogram(
            "crossroads_exchange_added_seconds",
            "Time an exchange spends in the hub, the holder's answer excluded",
            buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
            registry=self.registry,
        )
        self.holder_latency = Histogram(
            "crossroads_holder_seconds",
            "Time holders' adapters take to answer",
            ["holder"],
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=self.registry,
        )
        self.audit_batch_size = Histogram(
            "crossroads_audit_batch_records",
            "Audit records committed per group-commit transaction",
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512),
            registry=self.registry,
        )
        self.audit_commit_seconds = Histogram(
            "crossroads_audit_commit_seconds",
            "Duration of one group-commit transaction",
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1),
            registry=self.registry,
        )
        self.turned_away = Counter(
            "crossroads_turned_away",
            "Requests refused unread (429 too-many-failures) because their address made too many refused requests;"
            " only the first of each run is audited",
            registry=self.registry,
        )
        self.unparseable = Counter(
            "crossroads_unparseable_requests",
            "Requests the HTTP parser refused (400 unparseable-request), by the parser's error",
            ["error"],
            registry=self.registry,
        )
        self.policy_version = Gauge(
            "crossroads_policy_version", "The published policy version this process enforces", registry=self.registry
        )

    def audit_batch(self, records: int, seconds: float) -> None:
        self.audit_batch_size.observe(records)
        self.audit_commit_seconds.observe(seconds)

    def answered(
        self,
        kind: str,
        outcome: str,
        zone: str | None,
        latency_ms: float | None,
        holder: str | None,
        holder_ms: float | None,
    ) -> None:
        self.calls.labels(kind, outcome).inc()
        if holder is not None and holder_ms is not None:
            self.holder_latency.labels(holder).observe(holder_ms / 1000)
        if kind == "exchange":
            self.exchanges.labels(outcome, zone or "none").inc()
            if latency_ms is not None:
                self.added_latency.observe(max(0.0, latency_ms - (holder_ms or 0.0)) / 1000)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
