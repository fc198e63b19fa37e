"""Migrating a store that already holds consents: revision 0002_consent_records adds its columns without
copying the `consents` table (SQLite could not drop it while withdrawals refer to it), and the consents
made before it read back as given by their subject through an unrecorded channel.

SQLite only: alembic runs here on a synchronous connection (outside any event loop), and the tests have a
synchronous driver for SQLite alone; on PostgreSQL the same revision is plain ALTER TABLE ADD COLUMN.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from sqlalchemy.ext.asyncio import async_sessionmaker

from broker.base.store import Lane, create_engine
from broker.schema.migrations import _config
from consent.store import ConsentStore


def migrate(url: str, target: str) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        config = _config()
        config.attributes["connection"] = connection
        command.upgrade(config, target)
    engine.dispose()


def test_consents_made_before_the_revision_survive_it(tmp_path: Path) -> None:
    path = tmp_path / "hub.db"
    migrate(f"sqlite:///{path}", "0001")
    engine = sa.create_engine(f"sqlite:///{path}")
    at = datetime(2026, 3, 1, 9, tzinfo=UTC).replace(tzinfo=None)
    with engine.begin() as connection:
        connection.execute(sa.text("PRAGMA foreign_keys=ON"))
        connection.execute(
            sa.text(
                "INSERT INTO consents (id, subject, grantee, categories, purposes, valid_from, evidence, created_at,"
                " created_by) VALUES ('c-old', '85073003328', 'family-benefits', '[\"income\"]',"
                " '[\"benefit-eligibility\"]', :at, 'paper form', :at, 'admin-desk')"
            ),
            {"at": at},
        )
        connection.execute(
            sa.text("INSERT INTO consent_withdrawals VALUES ('c-old', :at, 'citizen-portal')"), {"at": at}
        )
    engine.dispose()
    migrate(f"sqlite:///{path}", "heads")

    async def history() -> tuple[object, ...]:
        engine = create_engine(f"sqlite+aiosqlite:///{path}")
        try:
            store = ConsentStore(async_sessionmaker(engine), Lane(engine))
            [consent], refusals = await store.of_subject("85073003328")
        finally:
            await engine.dispose()
        assert consent.withdrawal is not None and refusals == []
        return (
            consent.grantor,
            consent.mandate,
            consent.channel,
            consent.withdrawal.channel,
            consent.status(datetime.now(UTC)),
        )

    assert asyncio.run(history()) == ("85073003328", None, "unrecorded", "unrecorded", "withdrawn")
