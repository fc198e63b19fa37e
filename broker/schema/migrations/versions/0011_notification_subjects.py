"""notification subjects: change notifications found by the person they are about (the subject access
report) through an index, not a scan

Revision ID: 0011_notification_subjects
Revises: 0003_notifications
"""

from alembic import op

revision = "0011_notification_subjects"
down_revision = "0003_notifications"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(op.f("ix_notifications_subject"), "notifications", ["subject"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_notifications_subject"), table_name="notifications")
