"""alerts: what privacy officers were alerted to, on which channel, claimed once across hub processes

Revision ID: 0010_alerts
Revises: 0009_audit_ground
"""

import sqlalchemy as sa
from alembic import op

import broker.base.store

revision = "0010_alerts"
down_revision = "0009_audit_ground"
branch_labels = None
depends_on = None

UTC_TIME = broker.base.store.declarative.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "alerts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("reference", sa.String(length=200), nullable=False),
        sa.Column("document", sa.JSON(), nullable=False),
        sa.Column("created_at", UTC_TIME, nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("tried_at", UTC_TIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alerts")),
        sa.UniqueConstraint("channel", "kind", "reference", name=op.f("uq_alerts_channel_kind_reference")),
    )
    op.create_index(op.f("ix_alerts_status_tried_at"), "alerts", ["status", "tried_at"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_alerts_status_tried_at"), table_name="alerts")
    op.drop_table("alerts")
