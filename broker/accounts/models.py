"""The console's tables: operators' console passwords (Argon2 hashes), open console sessions, and failed
sign-ins counted for the lock-out of an operator id from an address. Only broker/accounts/store.py reads or
writes them.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, String
from sqlalchemy.orm import Mapped, mapped_column

from broker.base.store import Base


class ConsolePassword(Base):
    __tablename__ = "console_passwords"

    operator_id: Mapped[str] = mapped_column(String(63), primary_key=True)
    password_hash: Mapped[str] = mapped_column(String(200))  # Argon2id, in its PHC string form
    set_at: Mapped[datetime]


class ConsoleSession(Base):
    """A signed-in browser. The cookie carries a random token; only its SHA-256 is kept here."""

    __tablename__ = "console_sessions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    operator_id: Mapped[str] = mapped_column(String(63), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]
    seen_at: Mapped[datetime]


class SignInFailure(Base):
    """A failed sign-in, counted against its (operator id, peer address) pair for the lock-out."""

    __tablename__ = "console_sign_in_failures"
    __table_args__ = (Index(None, "operator_id", "peer", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    operator_id: Mapped[str] = mapped_column(String(63))
    peer: Mapped[str] = mapped_column(String(64))  # the address it came from (an IPv6 one as its /64)
    at: Mapped[datetime]
