"""The hub's store: one SQLAlchemy schema for SQLite (embedded) and PostgreSQL (production).

Each package owns its tables (directory/, consent/, policies/, broker/audit.py, broker/replay.py);
this package holds only what they share: the declarative base, the engine and the migrations.
"""

from broker.storage.base import Base, UTCDateTime
from broker.storage.engine import StoreUnavailable, create_engine, database_url_for, is_postgres
from broker.storage.lane import Lane, lane_for

__all__ = [
    "Base",
    "Lane",
    "StoreUnavailable",
    "UTCDateTime",
    "create_engine",
    "database_url_for",
    "is_postgres",
    "lane_for",
]
