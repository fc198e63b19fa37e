"""Alembic environment: migrations run on the connection handed over by broker.schema.migrations."""

from alembic import context

import broker.schema.tables  # noqa: F401 (every package's tables on Base.metadata)
from broker.base.store import Base

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
