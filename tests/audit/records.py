"""Audit records for tests of the chain: linked as the sequencer links them, and tampered with as an attacker
with write access to the store or to an export would."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from broker.audit import chain
from broker.audit.log import COLUMNS
from broker.base.signing import SigningKey

START = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def unlinked(count: int, first_seq: int = 1) -> list[dict[str, Any]]:
    """`count` exchange records in export form, without chain fields."""
    return [
        {
            **dict.fromkeys(COLUMNS),
            "seq": seq,
            "at": chain.timestamp(START + timedelta(seconds=seq)),
            "kind": "exchange",
            "requester": "family-benefits",
            "subject": f"8507300{seq:04d}",
            "category": "civil-status",
            "purpose": "benefit-eligibility",
            "outcome": "delivered",
            "status": 200,
            "emergency": False,
            "fields": ["name", "address"],
            "latency_ms": 12.5,
        }
        for seq in range(first_seq, first_seq + count)
    ]


def linked(count: int) -> list[dict[str, Any]]:
    return attach(chain.EMPTY, unlinked(count))


def attach(head: chain.Head, records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    links = chain.link(head, records)
    return [
        {**record, "position": link.position, "prev_hash": link.prev_hash, "hash": link.hash}
        for record, link in zip(records, links, strict=True)
    ]


def checkpoints(records: list[dict[str, Any]], key: SigningKey, *sizes: int) -> list[chain.Checkpoint]:
    return [
        chain.sign_checkpoint(key, chain.Head(size, records[size - 1]["hash"]), START + timedelta(hours=size))
        for size in sizes
    ]


def verify(
    records: list[dict[str, Any]], signed: list[chain.Checkpoint], key: SigningKey, batch: int = 7
) -> chain.Verdict:
    verifier = chain.ChainVerifier(signed, [key.public_key])
    for start in range(0, len(records), batch):
        verifier.feed(records[start : start + batch])
    return verifier.finish()


def renumbered(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The records with positions 1..n in list order, as an attacker covering a deletion would leave them."""
    return [{**record, "position": index} for index, record in enumerate(records, start=1)]


def rehashed(record: dict[str, Any]) -> dict[str, Any]:
    return {**record, "hash": chain.link_hash(record["prev_hash"], record)}
