"""Alembic environment: migrations run on the connection handed over by broker.storage.migrations."""

from alembic import context

import broker.audit
import broker.replay
import consent.models
import directory.models
import policies.models
from broker.storage import Base

MODELS = (broker.audit, broker.replay, consent.models, directory.models, policies.models)

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
