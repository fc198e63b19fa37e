"""batches: agencies' mass exchanges, their progress, and their lines' answers until read

Revision ID: 0012_batches
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

import broker.base.store

revision = "0012_batches"
down_revision = "0001"
branch_labels = ("batches",)
depends_on = None

UTC_TIME = broker.base.store.declarative.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "batches",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("requester", sa.String(length=63), nullable=False),
        sa.Column("key_id", sa.String(length=128), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("body_digest", sa.String(length=80), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("spool", sa.String(length=1000), nullable=False),
        sa.Column("lines", sa.BigInteger(), nullable=False),
        sa.Column("position", sa.BigInteger(), nullable=False),
        sa.Column("last_line", sa.BigInteger(), nullable=False),
        sa.Column("done", sa.BigInteger(), nullable=False),
        sa.Column("asked", sa.BigInteger(), nullable=False),
        sa.Column("by_outcome", sa.JSON(), nullable=False),
        sa.Column("created_at", UTC_TIME, nullable=False),
        sa.Column("updated_at", UTC_TIME, nullable=False),
        sa.Column("lease_until", UTC_TIME, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_batches")),
    )
    op.create_index(op.f("ix_batches_requester_created_at"), "batches", ["requester", "created_at"], unique=False)
    op.create_table(
        "batch_results",
        sa.Column("batch_id", sa.String(length=40), nullable=False),
        sa.Column("line", sa.BigInteger(), nullable=False),
        sa.Column("body", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(["batch_id"], ["batches.id"], name=op.f("fk_batch_results_batch_id_batches")),
        sa.PrimaryKeyConstraint("batch_id", "line", name=op.f("pk_batch_results")),
    )


def downgrade() -> None:
    op.drop_table("batch_results")
    op.drop_index(op.f("ix_batches_requester_created_at"), table_name="batches")
    op.drop_table("batches")
