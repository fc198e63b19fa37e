"""review subjects: reviews found by the person they are about (the console's person page, the subject access
report) through an index, not a scan

Revision ID: 0011_review_subjects
Revises: 0010_policy_changes
"""

from alembic import op

revision = "0011_review_subjects"
down_revision = "0010_policy_changes"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(op.f("ix_reviews_subject"), "reviews", ["subject"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_reviews_subject"), table_name="reviews")
