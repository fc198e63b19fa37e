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

    @property
    def url(self) -> str:
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")

    @property
    def database(self) -> str:
        return self.database_url or database_url_for(self.state_dir)

    @property
    def key_path(self) -> Path:
        return self.hub_key_path or self.state_dir / "hub.pem"
