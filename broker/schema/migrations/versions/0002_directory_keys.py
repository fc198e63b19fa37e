"""directory keys: who revoked a key, when and why; the directory version every hub process follows

Revision ID: 0002_directory_keys
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

import broker.base.store

revision = "0002_directory_keys"
down_revision = "0001"
branch_labels = ("directory",)
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("principal_keys", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("revoked_at", broker.base.store.declarative.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(sa.Column("revoked_by", sa.String(length=128), nullable=True))
        batch_op.add_column(sa.Column("revocation_reason", sa.String(length=1000), nullable=True))
    version = op.create_table(
        "directory_version",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_directory_version")),
    )
    op.bulk_insert(version, [{"id": 1, "version": 0}])


def downgrade() -> None:
    op.drop_table("directory_version")
    with op.batch_alter_table("principal_keys", schema=None) as batch_op:
        batch_op.drop_column("revocation_reason")
        batch_op.drop_column("revoked_by")
        batch_op.drop_column("revoked_at")
