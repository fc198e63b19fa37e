"""Who is calling: verify the request's RFC 9421 signature, its key and its freshness, note its nonce on the
call's audit record (claimed with the record's first write, broker/audit/nonces.py), then check that the principal
is active and that its role may call the endpoint (through Casbin).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from broker.audit.log import AuditEntry
from broker.audit.nonces import NonceUse
from broker.base import errors
from broker.base.signing import (
    Digested,
    Request,
    SignatureProblem,
    check_created,
    check_expires,
    read_signature_input,
    verify_request,
)
from directory.keys import KEY_ID
from directory.store import DirectoryStore, key_refusal
from policies.service import OperatorGate

RECORDED_KEY_ID = 64  # characters kept of a key id that is not of the registered shape


def recorded_key_id(key_id: str) -> str:
    """The key id as the audit record keeps it: as given when it has the shape of a registered key id, else
    cut and percent-escaped (all but letters, digits, `.`, `_` and `:`), so that a caller's choice of key id
    can neither fill the log nor begin a formula or a line in what reads it."""
    if KEY_ID.fullmatch(key_id):
        return key_id
    escaped = "".join(c if c.isascii() and (c.isalnum() or c in "._:") else f"%{ord(c):02X}" for c in key_id)
    return escaped[:RECORDED_KEY_ID]


@dataclass(frozen=True)
class Principal:
    kind: str  # "agency" or "operator"
    id: str
    role: str  # "agency" for agencies; the operator's role otherwise
    key_id: str
    # The directory's version of principals its key and standing were checked at (DirectoryStore.principals_version)
    as_of: int | None = None


class Authenticator:
    def __init__(self, directory: DirectoryStore, gate: OperatorGate, public_url: str) -> None:
        self._directory = directory
        self._gate = gate
        self._public_url = public_url.rstrip("/")

    async def authenticate(
        self,
        method: str,
        path_qs: str,
        headers: Mapping[str, str],
        body: bytes | Digested,
        entry: AuditEntry,
        follow: bool = True,
    ) -> Principal:
        """The principal who signed the request. With `follow`, the key and the principal's standing are what the
        store says now. Without, they are what this process last read: the caller confirms them if the directory's
        version it then reads is not the principal's `as_of` (the exchange path); a refusal is never made from
        memory alone (the key or the agency may have come back since), but after following the store."""
        if follow:
            await self._directory.follow()
            return await self._authenticate(method, path_qs, headers, body, entry)
        try:
            return await self._authenticate(method, path_qs, headers, body, entry)
        except (errors.UnknownKey, errors.Suspended):
            await self._directory.follow()
            return await self._authenticate(method, path_qs, headers, body, entry)

    async def _authenticate(
        self, method: str, path_qs: str, headers: Mapping[str, str], body: bytes | Digested, entry: AuditEntry
    ) -> Principal:
        at = datetime.now(UTC)
        try:
            signature = read_signature_input(headers)
            entry.key_id = recorded_key_id(signature.key_id)
            as_of = self._directory.principals_version
            key = await self._directory.key(signature.key_id, follow=False)
            refusal = key_refusal(key, at)
            if refusal is not None or key is None:
                raise errors.UnknownKey(f"key {signature.key_id!r}: {refusal}")
            entry.requester = key.principal_id
            check_created(signature.created, at.timestamp())
            check_expires(signature.params, at.timestamp())
            verify_request(Request(method, self._public_url + path_qs, headers), body, signature, key.public_key)
        except SignatureProblem as problem:
            raise errors.SIGNATURE_PROBLEMS[problem.kind](problem.detail) from problem
        entry.claim = NonceUse(signature.key_id, signature.nonce or "", at)
        return await self._principal(key.principal_kind, key.principal_id, key.key_id, as_of)

    async def confirm(self, principal: Principal, at: datetime) -> None:
        """Check the request's key and principal again, as the store now says they are (the directory moved since
        they were checked): a revocation or suspension made on any hub process stops the request."""
        key = await self._directory.key(principal.key_id, follow=False)
        refusal = key_refusal(key, at)
        if refusal is not None:
            raise errors.UnknownKey(f"key {principal.key_id!r}: {refusal}")
        await self._principal(principal.kind, principal.id, principal.key_id, principal.as_of)

    async def _principal(self, kind: str, principal_id: str, key_id: str, as_of: int | None) -> Principal:
        if kind == "agency":
            agency = await self._directory.agency(principal_id)
            if agency is None or agency.status != "active":
                raise errors.Suspended(f"agency {principal_id!r} is suspended")
            return Principal("agency", principal_id, "agency", key_id, as_of)
        operator = await self._directory.operator(principal_id)
        if operator is None or operator.status != "active":
            raise errors.Suspended(f"operator {principal_id!r} is suspended")
        return Principal("operator", principal_id, operator.role, key_id, as_of)

    def authorize(self, principal: Principal, route: str, method: str) -> None:
        if not self._gate.allows(principal.role, route, method):
            raise errors.Forbidden(f"{principal.role} {principal.id!r} may not call {method} {route}")
