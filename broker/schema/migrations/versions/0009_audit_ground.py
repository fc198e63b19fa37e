"""audit grounds: a record decided by a sharing rule carries that rule's ground as it stood (`ground`)

Records written before this revision have none (null), and their hash is unchanged: the chain covers `ground` only
where a record has one (broker/audit/chain.py), so the chain and every export made before still verify.

Revision ID: 0009_audit_ground
Revises: 0007_audit_reserve
"""

import sqlalchemy as sa
from alembic import op

revision = "0009_audit_ground"
down_revision = "0007_audit_reserve"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("audit_records", schema=None) as batch_op:
        batch_op.add_column(sa.Column("ground", sa.String(length=500), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("audit_records", schema=None) as batch_op:
        batch_op.drop_column("ground")
