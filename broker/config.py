"""The hub's settings, from command-line flags or `CROSSROADS_*` environment variables."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from broker.storage import database_url_for


@dataclass(frozen=True)
class Config:
    state_dir: Path
    host: str = "127.0.0.1"
    port: int = 8080
    public_url: str = ""  # the scheme://host:port agencies sign as @target-uri; derived from host:port if empty
    database_url: str = ""  # SQLite in state_dir if empty
    hub_key_path: Path | None = None  # state_dir/hub.pem if None (created by `crossroads keygen`)
    hub_key_id: str = "crossroads-hub"
    max_body_bytes: int = 64 * 1024
    holder_timeout_s: float = 5.0
    holder_connections: int = 100
    rate_per_s: float = 200.0
    rate_burst: float = 400.0
    policy_poll_s: float = 1.0
    audit_batch_max: int = 256  # records one group-commit transaction holds at most
    audit_batch_wait_s: float = 0.0  # how long a batch waits for more; 0: commit once the last commit is done
    audit_link_interval_s: float = 0.5  # how often committed audit records are linked into the chain
    audit_checkpoint_every: int = 1000  # records between signed audit checkpoints...
    audit_checkpoint_interval_s: float = 60.0  # ...or seconds, whichever comes first
    audit_abandon_after_s: float = 300.0  # an exchange left `forwarding` this long (its process died) is closed
    notification_poll_s: float = 0.5  # how often the outbox is checked for due deliveries
    notification_backoff_s: float = 1.0  # first retry delay; doubles per attempt, with jitter
    notification_backoff_cap_s: float = 300.0
    notification_max_attempts: int = 10  # then the delivery is dead-lettered
    notification_max_age_s: float = 86_400.0  # a delivery older than this is dead-lettered too
    emergency_per_day: int = 3  # break-the-glass accesses each agency may make per UTC day, on all hub processes

    @property
    def url(self) -> str:
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")

    @property
    def database(self) -> str:
        return self.database_url or database_url_for(self.state_dir)

    @property
    def key_path(self) -> Path:
        return self.hub_key_path or self.state_dir / "hub.pem"
