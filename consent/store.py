"""Reads and appends of the consent tables; the only code that touches them. Nothing is updated or deleted:
a withdrawal, a lift and an emergency use are rows of their own. Every read goes to the store (through the
store's lane, broker/base/store/lane.py), so what one hub process records is what every other process decides
on at its next exchange.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from functools import partial
from typing import Any, TypeVar

from sqlalchemy import BindParameter, bindparam, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from broker.base.store import Lane
from broker.base.store.plans import Plan, Rows
from consent.matching import Consent, Ending, Refusal
from consent.models import ConsentRecord, ConsentWithdrawal, EmergencyUse, RefusalLift, RefusalRecord

Ended = TypeVar("Ended", Consent, Refusal)


class AlreadyEnded(Exception):
    """The consent is already withdrawn, or the refusal already lifted."""

    def __init__(self, records: type[ConsentRecord | RefusalRecord], record_id: str) -> None:
        ending = "consent was already withdrawn" if records is ConsentRecord else "refusal was already lifted"
        super().__init__(f"this {ending} ({record_id})")


class ConsentStore:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], lane: Lane) -> None:
        self._sessions = sessions
        self._lane = lane  # the reads exchanges make: no ORM session, one hand-off each

    async def give(self, consent: Consent) -> None:
        async with self._sessions() as session, session.begin():
            session.add(
                ConsentRecord(
                    id=consent.id,
                    subject=consent.subject,
                    representative=consent.representative,
                    mandate=consent.mandate,
                    grantee=consent.grantee,
                    categories=list(consent.categories),
                    purposes=list(consent.purposes),
                    valid_from=consent.valid_from,
                    valid_until=consent.valid_until,
                    channel=consent.channel,
                    evidence=consent.evidence,
                    evidence_sha256=consent.evidence_sha256,
                    notice_version=consent.notice_version,
                    created_at=consent.created_at,
                    created_by=consent.created_by,
                )
            )

    async def withdraw(self, consent_id: str, ending: Ending) -> Consent | None:
        """Record the withdrawal; None when no such consent exists, AlreadyEnded when it was withdrawn."""
        withdrawal = ConsentWithdrawal(
            consent_id=consent_id, withdrawn_at=ending.at, withdrawn_by=ending.by, channel=ending.channel
        )
        return await self._end(
            ConsentRecord, ConsentWithdrawal, consent_id, withdrawal, partial(_consent, withdrawal=ending)
        )

    async def refuse(self, refusal: Refusal) -> None:
        async with self._sessions() as session, session.begin():
            session.add(
                RefusalRecord(
                    id=refusal.id,
                    subject=refusal.subject,
                    representative=refusal.representative,
                    mandate=refusal.mandate,
                    agency=refusal.agency,
                    categories=None if refusal.categories is None else list(refusal.categories),
                    channel=refusal.channel,
                    created_at=refusal.created_at,
                    created_by=refusal.created_by,
                )
            )

    async def lift(self, refusal_id: str, ending: Ending) -> Refusal | None:
        """Record the lift; None when no such refusal exists, AlreadyEnded when it was lifted."""
        lift = RefusalLift(refusal_id=refusal_id, lifted_at=ending.at, lifted_by=ending.by, channel=ending.channel)
        return await self._end(RefusalRecord, RefusalLift, refusal_id, lift, partial(_refusal, lift=ending))

    async def _end(
        self,
        records: type[ConsentRecord | RefusalRecord],
        endings: type[ConsentWithdrawal | RefusalLift],
        record_id: str,
        ending: ConsentWithdrawal | RefusalLift,
        ended: Callable[[Any], Ended],
    ) -> Ended | None:
        """Append the ending (withdrawal or lift) of a consent or refusal: None when there is no such record,
        AlreadyEnded when it has one already, recorded here or by another process meanwhile."""
        try:
            async with self._sessions() as session, session.begin():
                record = await session.get(records, record_id)
                if record is None:
                    return None
                if await session.get(endings, record_id) is not None:
                    raise AlreadyEnded(records, record_id)
                session.add(ending)
                return ended(record)
        except IntegrityError as error:  # another process ended it between the read and the write
            raise AlreadyEnded(records, record_id) from error

    async def of_subject(self, subject: str) -> tuple[list[Consent], list[Refusal]]:
        """Every consent and refusal of the subject, oldest first, with their withdrawals and lifts."""
        return await self._read(subject, None)

    def for_exchange(self, subject: str, agency: str) -> Plan[tuple[list[Consent], list[Refusal]]]:
        """The read of the subject's consents that could name `agency` (itself or `*`) and its refusals of
        `agency`, for the exchange to run with its other reads (broker/exchange/pipeline.py)."""
        return _both(subject, agency)

    def for_exchanges(
        self, subjects: Sequence[str], agency: str
    ) -> Plan[dict[str, tuple[list[Consent], list[Refusal]]]]:
        """`for_exchange` for many subjects at once (a window of a batch), in one read of each table: each
        subject's consents and refusals, as `for_exchange` would give them."""
        values = {"subjects": sorted(set(subjects)), "agency": agency}
        queries = ((CONSENTS_FOR_AGENCY_OF_MANY, values), (REFUSALS_OF_AGENCY_OF_MANY, values))
        return Plan(queries, partial(_by_subject, subjects=subjects))

    async def _read(self, subject: str, agency: str | None) -> tuple[list[Consent], list[Refusal]]:
        return await self._lane.read(_both(subject, agency).on)  # one transaction: one consistent view

    async def use_emergency(self, agency: str, exchange: str, at: datetime, per_day: int) -> int | None:
        """Count one emergency access of `agency` on `at`'s UTC day: how many it has used that day, this one
        included; None when `per_day` were already used.

        Each use takes the next free slot of the day; two processes taking the same slot collide on the
        primary key and the loser counts again, so no interleaving lets a day hold more than `per_day`.
        """
        day = at.date().isoformat()
        for _ in range(per_day + 1):
            try:
                async with self._sessions() as session, session.begin():
                    used = await session.scalar(
                        select(func.count()).where(EmergencyUse.agency == agency, EmergencyUse.day == day)
                    )
                    slot = used or 0
                    if slot >= per_day:
                        return None
                    session.add(EmergencyUse(agency=agency, day=day, slot=slot, exchange=exchange, at=at))
            except IntegrityError:
                continue
            return slot + 1
        return None


# A subject's consents and refusals, each with its withdrawal or lift if it has one; for an exchange, only
# those that could name the agency (itself, or `*` for consents). Built once: each read only binds its values.
ALL_CONSENTS = (
    select(
        ConsentRecord.__table__,
        ConsentWithdrawal.withdrawn_at,
        ConsentWithdrawal.withdrawn_by,
        ConsentWithdrawal.channel.label("withdrawal_channel"),
    )
    .outerjoin(ConsentWithdrawal, ConsentWithdrawal.consent_id == ConsentRecord.id)
    .order_by(ConsentRecord.created_at, ConsentRecord.id)
)
ALL_REFUSALS = (
    select(
        RefusalRecord.__table__, RefusalLift.lifted_at, RefusalLift.lifted_by, RefusalLift.channel.label("lift_channel")
    )
    .outerjoin(RefusalLift, RefusalLift.refusal_id == RefusalRecord.id)
    .order_by(RefusalRecord.created_at, RefusalRecord.id)
)
CONSENTS = ALL_CONSENTS.where(ConsentRecord.subject == bindparam("subject"))
REFUSALS = ALL_REFUSALS.where(RefusalRecord.subject == bindparam("subject"))
NAMING_AGENCY = or_(ConsentRecord.grantee == bindparam("agency"), ConsentRecord.grantee == "*")
CONSENTS_FOR_AGENCY = CONSENTS.where(NAMING_AGENCY)
REFUSALS_OF_AGENCY = REFUSALS.where(RefusalRecord.agency == bindparam("agency"))
# The same for many subjects at once (a window of a batch).
SUBJECTS: BindParameter[list[str]] = bindparam("subjects", expanding=True)
CONSENTS_FOR_AGENCY_OF_MANY = ALL_CONSENTS.where(ConsentRecord.subject.in_(SUBJECTS), NAMING_AGENCY)
REFUSALS_OF_AGENCY_OF_MANY = ALL_REFUSALS.where(
    RefusalRecord.subject.in_(SUBJECTS), RefusalRecord.agency == bindparam("agency")
)


def _withdrawal(row: Any) -> Ending | None:
    return None if row.withdrawn_at is None else Ending(row.withdrawn_at, row.withdrawn_by, row.withdrawal_channel)


def _lift(row: Any) -> Ending | None:
    return None if row.lifted_at is None else Ending(row.lifted_at, row.lifted_by, row.lift_channel)


def _consent(record: ConsentRecord | Any, withdrawal: Ending | None) -> Consent:
    return Consent(
        id=record.id,
        subject=record.subject,
        representative=record.representative,
        mandate=record.mandate,
        grantee=record.grantee,
        categories=tuple(record.categories),
        purposes=tuple(record.purposes),
        valid_from=record.valid_from,
        valid_until=record.valid_until,
        channel=record.channel,
        evidence=record.evidence,
        evidence_sha256=record.evidence_sha256,
        notice_version=record.notice_version,
        created_at=record.created_at,
        created_by=record.created_by,
        withdrawal=withdrawal,
    )


def _refusal(record: RefusalRecord | Any, lift: Ending | None) -> Refusal:
    return Refusal(
        id=record.id,
        subject=record.subject,
        representative=record.representative,
        mandate=record.mandate,
        agency=record.agency,
        categories=None if record.categories is None else tuple(record.categories),
        channel=record.channel,
        created_at=record.created_at,
        created_by=record.created_by,
        lift=lift,
    )


def _both(subject: str, agency: str | None) -> Plan[tuple[list[Consent], list[Refusal]]]:
    """The subject's consents and refusals (those that could concern `agency`, when one is named)."""
    consents, refusals = (CONSENTS, REFUSALS) if agency is None else (CONSENTS_FOR_AGENCY, REFUSALS_OF_AGENCY)
    values = {"subject": subject, "agency": agency}
    return Plan(((consents, values), (refusals, values)), _consents_and_refusals)


def _by_subject(rows: Sequence[Rows], subjects: Sequence[str]) -> dict[str, tuple[list[Consent], list[Refusal]]]:
    consents, refusals = rows
    found: dict[str, tuple[list[Consent], list[Refusal]]] = {subject: ([], []) for subject in subjects}
    for row in consents:
        found[row.subject][0].append(_consent(row, _withdrawal(row)))
    for row in refusals:
        found[row.subject][1].append(_refusal(row, _lift(row)))
    return found


def _consents_and_refusals(rows: Sequence[Rows]) -> tuple[list[Consent], list[Refusal]]:
    consents, refusals = rows
    return [_consent(row, _withdrawal(row)) for row in consents], [_refusal(row, _lift(row)) for row in refusals]
