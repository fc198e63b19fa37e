"""Reads and writes of the console's tables (broker/accounts/models.py); the only code that touches them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from broker.accounts.models import ConsolePassword, ConsoleSession, SignInFailure


@dataclass(frozen=True)
class Session:
    id: str  # the SHA-256 of the cookie's token
    operator_id: str
    csrf_token: str
    created_at: datetime
    seen_at: datetime


class ConsoleStore:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self._sessions = sessions

    async def password_hash(self, operator_id: str) -> str | None:
        async with self._sessions() as session:
            row = await session.get(ConsolePassword, operator_id)
        return None if row is None else row.password_hash

    async def set_password(self, operator_id: str, password_hash: str, at: datetime) -> None:
        """Store the operator's new password hash and close every console session it had open."""
        async with self._sessions() as session, session.begin():
            await session.merge(ConsolePassword(operator_id=operator_id, password_hash=password_hash, set_at=at))
            await session.execute(delete(ConsoleSession).where(ConsoleSession.operator_id == operator_id))

    async def rehash(self, operator_id: str, password_hash: str, at: datetime) -> None:
        """Replace a hash made with older parameters; the operator's sessions stay open."""
        async with self._sessions() as session, session.begin():
            await session.merge(ConsolePassword(operator_id=operator_id, password_hash=password_hash, set_at=at))

    async def failures(self, operator_id: str, peer: str, since: datetime) -> list[datetime]:
        """When the operator id's sign-ins from `peer` failed since `since` (and since its last success there)."""
        query = select(SignInFailure.at).where(
            SignInFailure.operator_id == operator_id, SignInFailure.peer == peer, SignInFailure.at > since
        )
        async with self._sessions() as session:
            return list((await session.scalars(query)).all())

    async def failing(self, since: datetime) -> dict[tuple[str, str], list[datetime]]:
        """Every (operator id, peer address) pair's failed sign-ins since `since`."""
        query = select(SignInFailure.operator_id, SignInFailure.peer, SignInFailure.at).where(SignInFailure.at > since)
        pairs: dict[tuple[str, str], list[datetime]] = {}
        async with self._sessions() as session:
            for operator_id, peer, at in (await session.execute(query)).all():
                pairs.setdefault((operator_id, peer), []).append(at)
        return pairs

    async def fail(self, operator_id: str, peer: str, at: datetime, forget_before: datetime) -> None:
        """Count a failed sign-in; failures older than `forget_before` (of any operator id) are dropped."""
        async with self._sessions() as session, session.begin():
            await session.execute(delete(SignInFailure).where(SignInFailure.at < forget_before))
            session.add(SignInFailure(operator_id=operator_id, peer=peer, at=at))

    async def unlock(self, operator_id: str, peer: str | None = None) -> int:
        """Forget the operator id's failed sign-ins from `peer`, or from every address: how many were forgotten."""
        statement = delete(SignInFailure).where(SignInFailure.operator_id == operator_id)
        if peer is not None:
            statement = statement.where(SignInFailure.peer == peer)
        async with self._sessions() as session, session.begin():
            result = await session.execute(statement)
        return int(result.rowcount or 0)  # type: ignore[attr-defined]

    async def open_session(self, opened: Session, peer: str, idle_before: datetime, created_before: datetime) -> None:
        """Record a new session; the operator's earlier failures from `peer` are forgotten (not those from other
        addresses: someone else's), and sessions that have expired (unused since `idle_before`, or opened before
        `created_before`) are closed."""
        async with self._sessions() as session, session.begin():
            await session.execute(
                delete(ConsoleSession).where(
                    or_(ConsoleSession.seen_at < idle_before, ConsoleSession.created_at < created_before)
                )
            )
            await session.execute(
                delete(SignInFailure).where(SignInFailure.operator_id == opened.operator_id, SignInFailure.peer == peer)
            )
            session.add(
                ConsoleSession(
                    id=opened.id,
                    operator_id=opened.operator_id,
                    csrf_token=opened.csrf_token,
                    created_at=opened.created_at,
                    seen_at=opened.seen_at,
                )
            )

    async def session(self, session_id: str) -> Session | None:
        async with self._sessions() as session:
            row = await session.get(ConsoleSession, session_id)
        if row is None:
            return None
        return Session(row.id, row.operator_id, row.csrf_token, row.created_at, row.seen_at)

    async def touch(self, session_id: str, at: datetime) -> None:
        async with self._sessions() as session, session.begin():
            await session.execute(update(ConsoleSession).where(ConsoleSession.id == session_id).values(seen_at=at))

    async def close_session(self, session_id: str) -> None:
        async with self._sessions() as session, session.begin():
            await session.execute(delete(ConsoleSession).where(ConsoleSession.id == session_id))
