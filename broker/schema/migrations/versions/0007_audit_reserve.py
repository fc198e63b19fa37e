"""audit reserve and leases: room the store keeps for completing the exchanges in flight (`audit_reserve`,
broker/audit/reserve.py), and the lease of a record reserved at `forwarding` (`lease_until`), past which any hub
process closes it as abandoned

Records reserved before this revision have no lease: their arrival counts as its end.

Revision ID: 0007_audit_reserve
Revises: 0002_audit_chain
"""

import sqlalchemy as sa
from alembic import op

import broker.base.store

revision = "0007_audit_reserve"
down_revision = "0002_audit_chain"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("audit_records", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("lease_until", broker.base.store.declarative.UTCDateTime(timezone=True), nullable=True)
        )
    op.create_table(
        "audit_reserve",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("ballast", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_reserve")),
    )


def downgrade() -> None:
    op.drop_table("audit_reserve")
    with op.batch_alter_table("audit_records", schema=None) as batch_op:
        batch_op.drop_column("lease_until")
