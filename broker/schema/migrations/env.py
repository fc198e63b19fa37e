"""Alembic environment: migrations run on the connection handed over by broker.schema.migrations."""

from alembic import context

import broker.schema.tables  # noqa: F401 (every package's tables on Base.metadata)
from broker.base.store import Base

connection = context.config.attributes["connection"]
# The revisions this run applies, in the order it applies them, for whoever asks (`upgrade`).
applied = context.config.attributes.setdefault("applied", [])
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=True,
    on_version_apply=lambda ctx, step, heads, run_args: applied.extend(step.up_revision_ids),
)
with context.begin_transaction():
    context.run_migrations()
