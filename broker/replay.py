"""Replay protection: a signature nonce is accepted once per key id within the created window.

The nonce table is shared by every hub process on the same store, so a replay sent to another process
is refused too. Nonces older than twice the window can never be accepted again and are pruned.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import String, delete
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Mapped, mapped_column

from broker.signing import CREATED_WINDOW_S
from broker.storage import Base, StoreUnavailable


class SeenNonce(Base):
    __tablename__ = "replay_nonces"

    key_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    nonce: Mapped[str] = mapped_column(String(128), primary_key=True)
    seen_at: Mapped[datetime] = mapped_column(index=True)


class NonceAlreadySeen(Exception):
    pass


class NonceStore:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def remember(self, key_id: str, nonce: str, at: datetime) -> None:
        """Record the nonce; raises NonceAlreadySeen if this key id used it before."""
        try:
            async with self._sessions() as session, session.begin():
                session.add(SeenNonce(key_id=key_id, nonce=nonce, seen_at=at))
        except IntegrityError as error:
            raise NonceAlreadySeen(nonce) from error
        except SQLAlchemyError as error:
            raise StoreUnavailable("nonce store not writable") from error

    async def prune(self, now: datetime) -> int:
        horizon = now - timedelta(seconds=2 * CREATED_WINDOW_S)
        async with self._sessions() as session, session.begin():
            result = await session.execute(delete(SeenNonce).where(SeenNonce.seen_at < horizon))
        return int(result.rowcount or 0)  # type: ignore[attr-defined]
