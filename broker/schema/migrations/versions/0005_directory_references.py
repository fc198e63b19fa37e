"""directory references: holdings and relationships become append-only declarations (who declared each, when);
the registered capacities

References made before this revision count as declared by `world` when they started; every capacity they name
is registered.

Revision ID: 0005_directory_references
Revises: 0002_directory_keys
"""

import sqlalchemy as sa
from alembic import op

import broker.base.store

revision = "0005_directory_references"
down_revision = "0002_directory_keys"
branch_labels = None
depends_on = None

UTC_TIME = broker.base.store.declarative.UTCDateTime(timezone=True)
REFERENCES = ("holdings", "relationships")


def upgrade() -> None:
    op.create_table(
        "capacities",
        sa.Column("name", sa.String(length=63), nullable=False),
        sa.Column("description", sa.String(length=500), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_capacities")),
    )
    op.execute("INSERT INTO capacities (name, description) SELECT DISTINCT capacity, '' FROM relationships")
    for table in REFERENCES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column("declared_at", UTC_TIME, nullable=True))
            batch_op.add_column(sa.Column("declared_by", sa.String(length=128), nullable=True))
        op.execute(f"UPDATE {table} SET declared_at = valid_from, declared_by = 'world'")  # noqa: S608 -- our tables
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.alter_column("declared_at", existing_type=UTC_TIME, nullable=False)
            batch_op.alter_column("declared_by", existing_type=sa.String(length=128), nullable=False)


def downgrade() -> None:
    for table in REFERENCES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column("declared_by")
            batch_op.drop_column("declared_at")
    op.drop_table("capacities")
