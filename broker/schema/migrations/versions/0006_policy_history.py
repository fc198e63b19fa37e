"""policy history: a version published by a rollback names the version it restored

Versions published before this revision are not marked: nothing recorded which of them were rollbacks.

Revision ID: 0006_policy_history
Revises: 0002_rule_proposals
"""

import sqlalchemy as sa
from alembic import op

revision = "0006_policy_history"
down_revision = "0002_rule_proposals"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("policy_versions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("rollback_of", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("policy_versions", schema=None) as batch_op:
        batch_op.drop_column("rollback_of")
