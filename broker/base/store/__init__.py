"""The hub's store: one SQLAlchemy schema for SQLite (embedded) and PostgreSQL (production).

Each package owns its tables (directory/, consent/, policies/, broker/audit/log.py, broker/audit/nonces.py, ...);
this package holds only what they share: the declarative base and column types, the engine, the store's thread
(`Lane`) and group commit. broker/schema/ gathers the tables and migrates them.
"""

from broker.base.store.declarative import Base, UTCDateTime
from broker.base.store.engine import StoreUnavailable, create_engine, database_url_for, is_postgres
from broker.base.store.lane import Lane

__all__ = [
    "Base",
    "Lane",
    "StoreUnavailable",
    "UTCDateTime",
    "create_engine",
    "database_url_for",
    "is_postgres",
]
