"""policy changes: four eyes on the sharing rules; an edit may wait for a second administrator's approval, a
version records who approved it and why, and the setting serving hubs declared is kept for every front end

Versions published before this revision were approved by nobody else: their `approved_by` stays empty.

Revision ID: 0010_policy_changes
Revises: 0009_rule_ground
"""

import sqlalchemy as sa
from alembic import op

import broker.base.store

revision = "0010_policy_changes"
down_revision = "0009_rule_ground"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "policy_changes",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("asks", sa.JSON(), nullable=False),
        sa.Column("against", sa.Integer(), nullable=False),
        sa.Column("proposed_by", sa.String(length=128), nullable=False),
        sa.Column("reason", sa.String(length=1000), nullable=False),
        sa.Column("proposed_at", broker.base.store.declarative.UTCDateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("decided_by", sa.String(length=128), nullable=True),
        sa.Column("decision_reason", sa.String(length=1000), nullable=True),
        sa.Column("decided_at", broker.base.store.declarative.UTCDateTime(timezone=True), nullable=True),
        sa.Column("version", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_policy_changes")),
    )
    op.create_index(op.f("ix_policy_changes_status"), "policy_changes", ["status"], unique=False)
    op.create_table(
        "policy_approvals",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("approvals", sa.Integer(), nullable=False),
        sa.Column("set_at", broker.base.store.declarative.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_policy_approvals")),
    )
    with op.batch_alter_table("policy_versions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("approved_by", sa.String(length=128), nullable=True))
        batch_op.add_column(sa.Column("approval_reason", sa.String(length=1000), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("policy_versions", schema=None) as batch_op:
        batch_op.drop_column("approval_reason")
        batch_op.drop_column("approved_by")
    op.drop_table("policy_approvals")
    op.drop_index(op.f("ix_policy_changes_status"), table_name="policy_changes")
    op.drop_table("policy_changes")
