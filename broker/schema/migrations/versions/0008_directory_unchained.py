"""directory references without foreign keys: holdings and relationships name their agency and category as
declared, checked against the registry in the transaction that appends them (directory/declaring.py); the
registry never deletes a name. A foreign key costs PostgreSQL a trigger a row, most of an import's time there.
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

FOREIGN_KEYS = {  # table: (column, referred table, referred column)
    "holdings": (("holder", "agencies", "id"), ("category", "categories", "name")),
    "relationships": (("agency", "agencies", "id"),),
}


def upgrade() -> None:
    for table, keys in FOREIGN_KEYS.items():
        with op.batch_alter_table(table, schema=None) as batch_op:
            for column, referred, _ in keys:
                batch_op.drop_constraint(op.f(f"fk_{table}_{column}_{referred}"), type_="foreignkey")
        if op.get_context().dialect.name == "sqlite":
            for column in ("valid_from", "valid_until", "declared_at"):
                op.execute(f"UPDATE {table} SET {column} = {column} || '.000000' WHERE length({column}) = 19")  # noqa: S608


def downgrade() -> None:
    for table, keys in FOREIGN_KEYS.items():
        with op.batch_alter_table(table, schema=None) as batch_op:
            for column, referred, key in keys:
                batch_op.create_foreign_key(op.f(f"fk_{table}_{column}_{referred}"), referred, [column], [key])
