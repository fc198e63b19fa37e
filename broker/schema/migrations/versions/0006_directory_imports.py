"""directory imports: bulk imports of references, their progress and the lines they rejected; a version of
the references of their own (row 2 of directory_version), so that their writes leave cached keys alone

Revision ID: 0006_directory_imports
Revises: 0005_directory_references
"""

import sqlalchemy as sa
from alembic import op

import broker.base.store

revision = "0006_directory_imports"
down_revision = "0005_directory_references"
branch_labels = None
depends_on = None

UTC_TIME = broker.base.store.declarative.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.execute("INSERT INTO directory_version (id, version) VALUES (2, 0)")
    op.create_table(
        "directory_imports",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("agency", sa.String(length=63), nullable=False),
        sa.Column("declared_by", sa.String(length=128), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("body_digest", sa.String(length=80), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("spool", sa.String(length=1000), nullable=False),
        sa.Column("position", sa.BigInteger(), nullable=False),
        sa.Column("lines", sa.BigInteger(), nullable=False),
        sa.Column("applied", sa.BigInteger(), nullable=False),
        sa.Column("rejected", sa.BigInteger(), nullable=False),
        sa.Column("created_at", UTC_TIME, nullable=False),
        sa.Column("updated_at", UTC_TIME, nullable=False),
        sa.Column("lease_until", UTC_TIME, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_directory_imports")),
    )
    op.create_index(op.f("ix_directory_imports_agency"), "directory_imports", ["agency"], unique=False)
    op.create_table(
        "directory_import_rejections",
        sa.Column("import_id", sa.String(length=40), nullable=False),
        sa.Column("line", sa.BigInteger(), nullable=False),
        sa.Column("detail", sa.String(length=500), nullable=False),
        sa.ForeignKeyConstraint(
            ["import_id"],
            ["directory_imports.id"],
            name=op.f("fk_directory_import_rejections_import_id_directory_imports"),
        ),
        sa.PrimaryKeyConstraint("import_id", "line", name=op.f("pk_directory_import_rejections")),
    )


def downgrade() -> None:
    op.execute("DELETE FROM directory_version WHERE id = 2")
    op.drop_table("directory_import_rejections")
    op.drop_index(op.f("ix_directory_imports_agency"), table_name="directory_imports")
    op.drop_table("directory_imports")
