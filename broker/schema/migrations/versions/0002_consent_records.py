"""consent records: representative and mandate, channel, evidence hash, notice version; refusals and their
lifts; the emergency-use ledger

Consents made before this revision were given by their subject (no representative) through a channel
nobody recorded: their `channel`, and that of their withdrawals, reads `unrecorded`.

Revision ID: 0002_consent_records
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

import broker.base.store

revision = "0002_consent_records"
down_revision = "0001"
branch_labels = ("consent",)
depends_on = None


def upgrade() -> None:
    # Plain ADD COLUMN, never a batch table copy: SQLite could not drop `consents` while withdrawals refer
    # to it. `channel` is NOT NULL with a server default, which also marks the rows made before it.
    op.add_column("consents", sa.Column("representative", sa.String(length=64), nullable=True))
    op.add_column("consents", sa.Column("mandate", sa.String(length=200), nullable=True))
    op.add_column("consents", sa.Column("channel", sa.String(length=16), server_default="unrecorded", nullable=False))
    op.add_column("consents", sa.Column("evidence_sha256", sa.String(length=64), nullable=True))
    op.add_column("consents", sa.Column("notice_version", sa.String(length=63), nullable=True))
    op.add_column(
        "consent_withdrawals",
        sa.Column("channel", sa.String(length=16), server_default="unrecorded", nullable=False),
    )

    op.create_table(
        "consent_refusals",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("subject", sa.String(length=64), nullable=False),
        sa.Column("representative", sa.String(length=64), nullable=True),
        sa.Column("mandate", sa.String(length=200), nullable=True),
        sa.Column("agency", sa.String(length=63), nullable=False),
        sa.Column("categories", sa.JSON(), nullable=True),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("created_at", broker.base.store.declarative.UTCDateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=63), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_consent_refusals")),
    )
    with op.batch_alter_table("consent_refusals", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_consent_refusals_subject_agency"), ["subject", "agency"], unique=False)

    op.create_table(
        "consent_refusal_lifts",
        sa.Column("refusal_id", sa.String(length=40), nullable=False),
        sa.Column("lifted_at", broker.base.store.declarative.UTCDateTime(timezone=True), nullable=False),
        sa.Column("lifted_by", sa.String(length=63), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.ForeignKeyConstraint(
            ["refusal_id"], ["consent_refusals.id"], name=op.f("fk_consent_refusal_lifts_refusal_id_consent_refusals")
        ),
        sa.PrimaryKeyConstraint("refusal_id", name=op.f("pk_consent_refusal_lifts")),
    )
    op.create_table(
        "emergency_uses",
        sa.Column("agency", sa.String(length=63), nullable=False),
        sa.Column("day", sa.String(length=10), nullable=False),
        sa.Column("slot", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("exchange", sa.String(length=40), nullable=False),
        sa.Column("at", broker.base.store.declarative.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("agency", "day", "slot", name=op.f("pk_emergency_uses")),
    )


def downgrade() -> None:
    op.drop_table("emergency_uses")
    op.drop_table("consent_refusal_lifts")
    with op.batch_alter_table("consent_refusals", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_consent_refusals_subject_agency"))
    op.drop_table("consent_refusals")
    op.drop_column("consent_withdrawals", "channel")
    for name in ("notice_version", "evidence_sha256", "channel", "mandate", "representative"):
        op.drop_column("consents", name)
