"""Everything a refused request must leave as it was, and the audit records it must leave behind.

`snapshot` reads the published policy version through the policy service, and every other table of the
schema (directory, rules and their history, consents and refusals, emergency uses, reviews and proposals,
the notification outbox and opt-outs, the console's accounts) through read-only SELECTs on the hub's own
engine: no store has a public function listing all of its rows, and a digest of each table catches an
update as well as an insert or a delete. Only the tables every request writes by design, and the audit
reserve's ballast, are left out.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select

import broker.schema.tables  # noqa: F401 (every package's tables on Base.metadata)
from broker.audit.log import RECORDS
from broker.base.store import Base
from broker.hub import Hub

# Every attempt leaves one audit record (and the sequencer links and checkpoints them); every authenticated
# request consumes its nonce, refused or not (PROTOCOL.md).
WRITTEN_BY_EVERY_REQUEST = frozenset({"audit_records", "audit_checkpoints", "replay_nonces"})
# The audit reserve is random ballast that readiness probes rewrite (broker/audit/reserve.py): it says nothing.
LEFT_OUT = WRITTEN_BY_EVERY_REQUEST | {"audit_reserve"}


@dataclass(frozen=True)
class Snapshot:
    policy_version: int
    tables: Mapping[str, str]  # table name → SHA-256 of its rows in primary-key order

    def changed(self, other: Snapshot) -> list[str]:
        names = [name for name in self.tables if self.tables[name] != other.tables.get(name)]
        return names + (["policy version"] if self.policy_version != other.policy_version else [])


async def snapshot(hub: Hub) -> Snapshot:
    version = (await hub.policies.rules()).version
    digests = {}
    async with hub.engine.connect() as connection:
        for table in Base.metadata.sorted_tables:
            if table.name in LEFT_OUT:
                continue
            rows = (await connection.execute(select(table).order_by(*table.primary_key.columns))).all()
            digests[table.name] = hashlib.sha256(repr([tuple(row) for row in rows]).encode()).hexdigest()
    return Snapshot(version, digests)


async def last_seq(hub: Hub) -> int:
    async with hub.engine.connect() as connection:
        return int(await connection.scalar(select(func.max(RECORDS.c.seq))) or 0)


async def records_after(hub: Hub, seq: int) -> list[dict[str, Any]]:
    """The audit records committed after `seq`, oldest first (read-only)."""
    query = select(RECORDS).where(RECORDS.c.seq > seq).order_by(RECORDS.c.seq)
    async with hub.engine.connect() as connection:
        return [dict(row._mapping) for row in (await connection.execute(query)).all()]
