"""console: operators' console passwords, console sessions, failed sign-ins (for the lock-out)

Revision ID: 0004_console
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

import broker.base.store

revision = "0004_console"
down_revision = "0001"
branch_labels = ("console",)
depends_on = None

UTC_TIME = broker.base.store.declarative.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "console_passwords",
        sa.Column("operator_id", sa.String(length=63), nullable=False),
        sa.Column("password_hash", sa.String(length=200), nullable=False),
        sa.Column("set_at", UTC_TIME, nullable=False),
        sa.PrimaryKeyConstraint("operator_id", name=op.f("pk_console_passwords")),
    )
    op.create_table(
        "console_sessions",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("operator_id", sa.String(length=63), nullable=False),
        sa.Column("csrf_token", sa.String(length=64), nullable=False),
        sa.Column("created_at", UTC_TIME, nullable=False),
        sa.Column("seen_at", UTC_TIME, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_console_sessions")),
    )
    op.create_index(op.f("ix_console_sessions_operator_id"), "console_sessions", ["operator_id"], unique=False)
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


def downgrade() -> None:
    op.drop_index(op.f("ix_console_sign_in_failures_operator_id_at"), table_name="console_sign_in_failures")
    op.drop_table("console_sign_in_failures")
    op.drop_index(op.f("ix_console_sessions_operator_id"), table_name="console_sessions")
    op.drop_table("console_sessions")
    op.drop_table("console_passwords")
