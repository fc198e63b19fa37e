"""rule proposals: reviewers ask administrators to make a review's outcome a standing rule

Revision ID: 0002_rule_proposals
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

import broker.base.store

revision = "0002_rule_proposals"
down_revision = "0001"
branch_labels = ("policies",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "rule_proposals",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("review_id", sa.String(length=40), nullable=False),
        sa.Column("rule", sa.JSON(), nullable=False),
        sa.Column("reason", sa.String(length=2000), nullable=False),
        sa.Column("proposed_by", sa.String(length=63), nullable=False),
        sa.Column("proposed_at", broker.base.store.declarative.UTCDateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("accepted_version", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rule_proposals")),
    )
    op.create_index(op.f("ix_rule_proposals_status"), "rule_proposals", ["status"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_rule_proposals_status"), table_name="rule_proposals")
    op.drop_table("rule_proposals")
