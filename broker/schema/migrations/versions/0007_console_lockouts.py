"""console lock-outs per address: a failed sign-in names the peer address it came from, and the lock-out counts
an operator id's failures from each address apart

Failed sign-ins are a day's transient state: those recorded before this revision (by operator id alone) are
dropped with their table, which is made anew.

Revision ID: 0007_console_lockouts
Revises: 0004_console
"""

import sqlalchemy as sa
from alembic import op

import broker.base.store

revision = "0007_console_lockouts"
down_revision = "0004_console"
branch_labels = None
depends_on = None

UTC_TIME = broker.base.store.declarative.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.drop_index(op.f("ix_console_sign_in_failures_operator_id_at"), table_name="console_sign_in_failures")
    op.drop_table("console_sign_in_failures")
    op.create_table(
        "console_sign_in_failures",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("operator_id", sa.String(length=63), nullable=False),
        sa.Column("peer", sa.String(length=64), nullable=False),
        sa.Column("at", UTC_TIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_console_sign_in_failures")),
    )
    op.create_index(
        op.f("ix_console_sign_in_failures_operator_id_peer_at"),
        "console_sign_in_failures",
        ["operator_id", "peer", "at"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_console_sign_in_failures_operator_id_peer_at"), table_name="console_sign_in_failures")
    op.drop_table("console_sign_in_failures")
    op.create_table(
        "console_sign_in_failures",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("operator_id", sa.String(length=63), nullable=False),
        sa.Column("at", UTC_TIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_console_sign_in_failures")),
    )
    op.create_index(
        op.f("ix_console_sign_in_failures_operator_id_at"),
        "console_sign_in_failures",
        ["operator_id", "at"],
        unique=False,
    )
