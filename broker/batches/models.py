"""The batches' tables: each batch's progress, and the answers of its lines until its requester has read them."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from broker.base.store import Base


class Batch(Base):
    """A batch of one agency's exchange requests (an NDJSON file in the spool folder of the process that accepted
    it), decided a window of lines at a time: what it has read (`position`, the byte offset of its next line;
    `done`, the lines answered) and how they ended (`by_outcome`), committed after each window."""

    __tablename__ = "batches"
    __table_args__ = (Index(None, "requester", "created_at"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    requester: Mapped[str] = mapped_column(String(63))
    key_id: Mapped[str] = mapped_column(String(128))  # the key that signed it: checked again for every window
    status: Mapped[str] = mapped_column(String(16))  # queued, running, done, cancelled
    body_digest: Mapped[str] = mapped_column(String(80))
    size: Mapped[int] = mapped_column(BigInteger)
    spool: Mapped[str] = mapped_column(String(1000))  # where the file is, for the process that accepted it
    lines: Mapped[int] = mapped_column(BigInteger)
    position: Mapped[int] = mapped_column(BigInteger, default=0)
    last_line: Mapped[int] = mapped_column(BigInteger, default=0)  # the number of the line before `position`
    done: Mapped[int] = mapped_column(BigInteger, default=0)
    # The last line of the window whose lines cleared for a holder are being forwarded: a line of it without a
    # record after a restart may have been asked, and is not asked again.
    asked: Mapped[int] = mapped_column(BigInteger, default=0)
    by_outcome: Mapped[dict[str, int]] = mapped_column(JSON)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    lease_until: Mapped[datetime | None]  # a running batch whose process stops is taken up after this


class BatchResult(Base):
    """A line's answer, as its requester reads it (`GET /v1/batches/{id}/results`), kept only until the requester
    has read past it or the batch expires: the hub holds no records."""

    __tablename__ = "batch_results"

    batch_id: Mapped[str] = mapped_column(String(40), ForeignKey("batches.id"), primary_key=True)
    line: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    body: Mapped[bytes] = mapped_column(LargeBinary)
