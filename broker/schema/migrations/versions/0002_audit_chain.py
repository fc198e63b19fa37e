"""audit chain: records' chain position and hashes, signed checkpoints, search indexes; confidential purposes
with an embargo for citizens' access logs

Records written before this revision are unlinked; the sequencer links them in `seq` order at the hub's
next start.

Revision ID: 0002_audit_chain
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

import broker.base.store

revision = "0002_audit_chain"
down_revision = "0001"
branch_labels = ("audit",)
depends_on = None

SEARCH_COLUMNS = ("holder", "category", "purpose", "zone", "outcome", "kind")  # subject, requester: in 0001


def upgrade() -> None:
    with op.batch_alter_table("audit_records", schema=None) as batch_op:
        batch_op.add_column(sa.Column("position", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("prev_hash", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("hash", sa.String(length=64), nullable=True))
        batch_op.create_index(batch_op.f("ix_audit_records_position"), ["position"], unique=True)
        batch_op.create_index(batch_op.f("ix_audit_records_at"), ["at"], unique=False)
        for column in SEARCH_COLUMNS:
            batch_op.create_index(batch_op.f(f"ix_audit_records_{column}_at"), [column, "at"], unique=False)

    op.create_table(
        "audit_checkpoints",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("head", sa.String(length=64), nullable=False),
        sa.Column("at", broker.base.store.declarative.UTCDateTime(timezone=True), nullable=False),
        sa.Column("key_id", sa.String(length=128), nullable=False),
        sa.Column("public_key_pem", sa.String(length=400), nullable=False),
        sa.Column("signature", sa.String(length=100), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_checkpoints")),
    )
    with op.batch_alter_table("audit_checkpoints", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_audit_checkpoints_size"), ["size"], unique=False)

    with op.batch_alter_table("purposes", schema=None) as batch_op:
        batch_op.add_column(sa.Column("confidential", sa.Boolean(), server_default=sa.false(), nullable=False))
        batch_op.add_column(sa.Column("embargo_days", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("purposes", schema=None) as batch_op:
        batch_op.drop_column("embargo_days")
        batch_op.drop_column("confidential")

    with op.batch_alter_table("audit_checkpoints", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_checkpoints_size"))
    op.drop_table("audit_checkpoints")

    with op.batch_alter_table("audit_records", schema=None) as batch_op:
        for column in SEARCH_COLUMNS:
            batch_op.drop_index(batch_op.f(f"ix_audit_records_{column}_at"))
        batch_op.drop_index(batch_op.f("ix_audit_records_at"))
        batch_op.drop_index(batch_op.f("ix_audit_records_position"))
        batch_op.drop_column("hash")
        batch_op.drop_column("prev_hash")
        batch_op.drop_column("position")
