"""Migrating a store that already holds declared references: revision 0008_directory_unchained drops the foreign
keys of holdings and relationships (the registry is checked where they are declared), keeps one index of
relationships where there were two, and writes the times the driver's adapter appended without microseconds as
every other time of the store, so they compare as equal.

SQLite only, as tests/consent/test_consent_migration.py: on PostgreSQL the revision is plain ALTER TABLE and the
driver always wrote the store's own times."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa

from tests.consent.test_consent_migration import migrate

AGENCY = (
    "INSERT INTO agencies (id, name, adapter_url, status) VALUES ('tax-office', 'Tax', 'http://127.0.0.1:9', 'active')"
)
HOLDING = (
    "INSERT INTO holdings (holder, category, subject, valid_from, valid_until, declared_at, declared_by)"
    " VALUES ('tax-office', 'income', '85073003328', '2026-12-01 00:00:00', NULL, '2026-12-01 10:00:00.250000', 'x')"
)


def test_references_declared_before_the_revision_survive_it_unchained(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'hub.db'}"
    migrate(url, "0006_directory_imports")
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        connection.execute(sa.text("INSERT INTO categories (name, description) VALUES ('income', 'Income')"))
        connection.execute(sa.text(AGENCY))
        connection.execute(sa.text(HOLDING))
    migrate(url, "heads")
    with engine.begin() as connection:
        row = connection.execute(sa.text("SELECT valid_from, valid_until, declared_at FROM holdings")).one()
        assert tuple(row) == ("2026-12-01 00:00:00.000000", None, "2026-12-01 10:00:00.250000")
        for table in ("holdings", "relationships"):
            assert sa.inspect(connection).get_foreign_keys(table) == []
        indexes = sa.inspect(connection).get_indexes("relationships")
        assert [(index["name"], index["column_names"]) for index in indexes] == [
            ("ix_relationships_subject_agency", ["subject", "agency"])
        ]
    engine.dispose()
