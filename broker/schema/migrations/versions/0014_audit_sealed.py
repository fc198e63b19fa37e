"""audit of sealed answers: a record of a sealed exchange carries its ciphertext's digest (`sealed_digest`), never the
ciphertext

Records written before this revision have none (null), and their hash is unchanged: the chain covers `sealed_digest`
only where a record has one (broker/audit/chain.py), so the chain and every export made before still verify.

Revision ID: 0014_audit_sealed
Revises: 0010_alerts
"""

import sqlalchemy as sa
from alembic import op

revision = "0014_audit_sealed"
down_revision = "0010_alerts"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("audit_records", schema=None) as batch_op:
        batch_op.add_column(sa.Column("sealed_digest", sa.String(length=80), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("audit_records", schema=None) as batch_op:
        batch_op.drop_column("sealed_digest")
