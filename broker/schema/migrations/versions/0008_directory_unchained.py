"""directory references without foreign keys: holdings and relationships name their agency and category as
declared, checked against the registry in the transaction that appends them (directory/declaring.py); the
registry never deletes a name. A foreign key costs PostgreSQL a trigger a row, most of an import's time there.
Relationships are read by subject only (alone, or with the agency): one index (subject, agency) serves both, where
two had to be written for every row.
On SQLite, times the driver's own adapter appended before this revision (without microseconds when they were
zero) are written as SQLAlchemy writes and compares every other time.

Revision ID: 0008_directory_unchained
Revises: 0006_directory_imports
"""

from alembic import op

revision = "0008_directory_unchained"
down_revision = "0006_directory_imports"
branch_labels = None
depends_on = None

TIMES = ("valid_from", "valid_until", "declared_at")


def upgrade() -> None:
    with op.batch_alter_table("holdings", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("fk_holdings_holder_agencies"), type_="foreignkey")
        batch_op.drop_constraint(op.f("fk_holdings_category_categories"), type_="foreignkey")
    with op.batch_alter_table("relationships", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("fk_relationships_agency_agencies"), type_="foreignkey")
        batch_op.drop_index(batch_op.f("ix_relationships_agency_subject"))
        batch_op.drop_index(batch_op.f("ix_relationships_subject"))
        batch_op.create_index(batch_op.f("ix_relationships_subject_agency"), ["subject", "agency"], unique=False)
    if op.get_context().dialect.name == "sqlite":
        for table in ("holdings", "relationships"):
            for column in TIMES:
                op.execute(f"UPDATE {table} SET {column} = {column} || '.000000' WHERE length({column}) = 19")  # noqa: S608


def downgrade() -> None:
    with op.batch_alter_table("relationships", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_relationships_subject_agency"))
        batch_op.create_index(batch_op.f("ix_relationships_subject"), ["subject"], unique=False)
        batch_op.create_index(batch_op.f("ix_relationships_agency_subject"), ["agency", "subject"], unique=False)
        batch_op.create_foreign_key(op.f("fk_relationships_agency_agencies"), "agencies", ["agency"], ["id"])
    with op.batch_alter_table("holdings", schema=None) as batch_op:
        batch_op.create_foreign_key(op.f("fk_holdings_category_categories"), "categories", ["category"], ["name"])
        batch_op.create_foreign_key(op.f("fk_holdings_holder_agencies"), "agencies", ["holder"], ["id"])
