"""rule grounds: every sharing rule names the legal basis that authorises it (`ground`), required of white and grey
rules

Rules made before this revision had none: their white and grey rules get "not recorded (rule made before grounds
were required)", so they stay valid and say so, and the versions published before read the same way
(policies.rules.stored_rule); black rules need none and get none.

Revision ID: 0009_rule_ground
Revises: 0006_policy_history
"""

import sqlalchemy as sa
from alembic import op

revision = "0009_rule_ground"
down_revision = "0006_policy_history"
branch_labels = None
depends_on = None

NOT_RECORDED = "not recorded (rule made before grounds were required)"  # policies.rules.GROUND_NOT_RECORDED


def upgrade() -> None:
    with op.batch_alter_table("policy_rules", schema=None) as batch_op:
        batch_op.add_column(sa.Column("ground", sa.String(length=500), nullable=True))
    rules = sa.table("policy_rules", sa.column("zone", sa.String), sa.column("ground", sa.String))
    op.execute(rules.update().where(rules.c.zone.in_(("white", "grey"))).values(ground=NOT_RECORDED))


def downgrade() -> None:
    with op.batch_alter_table("policy_rules", schema=None) as batch_op:
        batch_op.drop_column("ground")
