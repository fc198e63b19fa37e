"""sealed answers: a category can be sealed (its changes kept in `category_changes`), and an agency registers X25519
keys that sealed answers are encrypted to beside its Ed25519 signing keys (`principal_keys.use`)

Revision ID: 0013_sealed_answers
Revises: 0008_directory_unchained
"""

import sqlalchemy as sa
from alembic import op

import broker.base.store

revision = "0013_sealed_answers"
down_revision = "0008_directory_unchained"
branch_labels = None
depends_on = None

UTC_TIME = broker.base.store.declarative.UTCDateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("principal_keys", schema=None) as batch_op:
        batch_op.add_column(sa.Column("use", sa.String(length=8), server_default="sign", nullable=False))
    with op.batch_alter_table("categories", schema=None) as batch_op:
        batch_op.add_column(sa.Column("sealed", sa.Boolean(), server_default=sa.false(), nullable=False))
    op.create_table(
        "category_changes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("category", sa.String(length=63), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("sealed", sa.Boolean(), nullable=False),
        sa.Column("changed_at", UTC_TIME, nullable=False),
        sa.Column("changed_by", sa.String(length=128), nullable=False),
        sa.Column("reason", sa.String(length=1000), nullable=False),
        sa.ForeignKeyConstraint(["category"], ["categories.name"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("category_changes", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_category_changes_category"), ["category"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("category_changes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_category_changes_category"))
    op.drop_table("category_changes")
    with op.batch_alter_table("categories", schema=None) as batch_op:
        batch_op.drop_column("sealed")
    with op.batch_alter_table("principal_keys", schema=None) as batch_op:
        batch_op.drop_column("use")
