"""Sealed answers end to end (PROTOCOL.md, "Sealed answers"): an administrator seals a category, the holder's
adapter encrypts the record, kept to the rule's fields, to the requester's X25519 key and signs it, the hub checks and
relays what it cannot open, keeping only the ciphertext's digest, and the requester's client opens it. A holder that
answers otherwise is refused (`502 bad-seal`) and audited, or its answer is refused by the requester's client.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from contextlib import AsyncExitStack
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from pyhpke import KEMKey
from structlog.testing import capture_logs

from adapters.client import HubProblem, UnverifiedAnswer
from adapters.examples.demo_agencies import PIETER, SOFIE
from adapters.sealing import SUITE, Recipient, seal, sealing_public_pem
from adapters.server import Adapter, RecordRequest
from broker.audit import chain
from broker.base.envelopes import HPKE_INFO, b64url, read_envelope, sign_envelope, unb64url
from broker.base.signing import SigningKey, generate_key, public_key_pem
from broker.cli.demo import DemoWorld, sealing_key_id
from tests.agencies import add_holder

INCOME = {"subject": SOFIE, "category": "income", "purpose": "benefit-eligibility"}
PENSION = {"amount": 1820, "year": 2026, "iban": "BE71 0961 2345 6769"}
FIELDS = ("amount", "year")


async def seal_category(world: DemoWorld, session: aiohttp.ClientSession, category: str, sealed: bool = True) -> Any:
    change = {"sealed": sealed, "reason": "answers read by their requester alone"}
    return (await world.client("admin-desk", session).call("PATCH", f"/v1/categories/{category}", change))[1]


async def test_a_sealed_answer_is_opened_by_its_requester_alone(
    world: DemoWorld, session: aiohttp.ClientSession
) -> None:
    plain = await world.client("family-benefits", session).exchange(**INCOME)
    assert plain.sealed is None
    changed = await seal_category(world, session, "income")
    assert (changed["sealed"], changed["version"]) == (True, 1)

    result = await world.client("family-benefits", session).exchange(**INCOME)
    assert result.data == plain.data == {"taxable_income": 35400, "year": 2025}  # kept to the rule's fields
    assert result.sealed is not None and result.holder == "tax-authority"
    envelope = read_envelope(result.sealed)
    assert (envelope.exchange, envelope.fields, envelope.recipient) == (
        result.exchange,
        ("taxable_income", "year"),
        sealing_key_id("family-benefits"),
    )
    [record] = await world.hub.audit.records(exchange=result.exchange)
    assert (record.outcome, record.status, record.holder) == ("delivered", 200, "tax-authority")
    assert record.sealed_digest == "sha-256:" + hashlib.sha256(envelope.ct).hexdigest()
    values = {name: getattr(record, name) for name in (*chain.CHAIN_FIELDS, "ground", "sealed_digest")}
    values["at"] = chain.timestamp(record.at)
    assert chain.content(values) != chain.content({**values, "sealed_digest": None})  # the chain covers it

    # Another agency's client, holding its own sealing key, cannot open it.
    holder_key = {"key_id": "k", "public_key_pem": public_key_pem(world.keys["tax-authority"].public_key)}
    answer = {"exchange": result.exchange, "sealed": result.sealed, "holder_key": holder_key}
    with pytest.raises(UnverifiedAnswer, match="not one of ours"):
        world.client("employment-office", session).open(answer)


async def test_a_hub_process_learns_no_value_of_a_sealed_record(
    sqlite_world: DemoWorld, session: aiohttp.ClientSession
) -> None:
    """The threat model's claim (docs/threat-model.md, "A hub process taken over"): everything a hub process
    receives, sends, logs and stores of a sealed exchange holds no value of the record (only who asked whom, for
    what, the fields' names and the ciphertext's size). That it holds no key that opens it, and no code that would,
    is the import contract `data-blind` (pyproject.toml, tests/test_architecture.py)."""
    received: list[bytes] = []  # the hub's forward, and every byte of the holder's answer it receives

    class Recording(Adapter):
        def _signed(self, request: web.Request, asked: bytes, status: int, body: bytes, kind: str) -> web.Response:
            received.extend([asked, body])
            return super()._signed(request, asked, status, body, kind)

    async def fund(request: RecordRequest) -> dict[str, Any]:
        return {"fund": "Caisse Ardennaise des Pensions", "amount": 1820, "iban": "BE71 0961 2345 6769"}

    async with AsyncExitStack() as stack:
        await add_holder(sqlite_world, stack, "pension-fund", fund, fields=("fund", "amount"), kind=Recording)
        await seal_category(sqlite_world, session, "pension")
        with capture_logs() as logs:
            result = await sqlite_world.client("family-benefits", session).exchange(
                PIETER, "pension", "benefit-eligibility"
            )
    assert result.data == {"fund": "Caisse Ardennaise des Pensions", "amount": 1820} and len(received) == 2
    [record] = await sqlite_world.hub.audit.records(exchange=result.exchange)
    store = b"".join(path.read_bytes() for path in sqlite_world.state_dir.glob("*.db*"))
    assert store  # the SQLite file and its write-ahead log
    places = [*received, json.dumps(vars(record), default=str).encode(), json.dumps(logs, default=str).encode(), store]
    for place in places:
        assert b"Ardennaise" not in place
    assert b'"fund"' in received[0]  # the fields' names are metadata the hub asks with


async def test_sealing_is_versioned_audited_and_for_administrators(
    sqlite_world: DemoWorld, session: aiohttp.ClientSession
) -> None:
    admin = sqlite_world.client("admin-desk", session)
    assert (await seal_category(sqlite_world, session, "income"))["version"] == 1
    assert (await seal_category(sqlite_world, session, "income"))["version"] == 1  # no change, no version
    assert (await seal_category(sqlite_world, session, "income", sealed=False))["version"] == 2
    _, history = await admin.call("GET", "/v1/categories/income/history")
    assert [(change["version"], change["sealed"], change["changed_by"]) for change in history["changes"]] == [
        (1, True, "admin-desk"),
        (2, False, "admin-desk"),
    ]
    _, listed = await admin.call("GET", "/v1/categories")
    assert {category["name"]: category["sealed"] for category in listed["categories"]}["income"] is False
    records = await sqlite_world.hub.audit.records(kind="registry", category="income")
    assert [record.status for record in records] == [200, 200, 200, 200]
    with pytest.raises(HubProblem) as refused:
        await sqlite_world.client("family-benefits", session).call(
            "PATCH", "/v1/categories/income", {"sealed": True, "reason": "mine"}
        )
    assert (refused.value.status, refused.value.name) == (403, "forbidden")
    for body in ({"sealed": "yes", "reason": "r"}, {"sealed": True}, {"sealed": True, "reason": "r", "x": 1}):
        with pytest.raises(HubProblem) as refused:
            await admin.call("PATCH", "/v1/categories/income", body)
        assert refused.value.status == 422
    with pytest.raises(HubProblem) as refused:
        await admin.call("PATCH", "/v1/categories/no-such", {"sealed": True, "reason": "r"})
    assert refused.value.status == 404
    assert len(history["changes"]) == len((await admin.call("GET", "/v1/categories/income/history"))[1]["changes"])


async def test_sealing_keys_are_registered_rotated_and_revoked_like_signing_keys(
    sqlite_world: DemoWorld, session: aiohttp.ClientSession
) -> None:
    admin = sqlite_world.client("admin-desk", session)
    await seal_category(sqlite_world, session, "income")
    fresh = X25519PrivateKey.generate()
    rotation = {"key_id": "fb-seal-2027", "public_key_pem": sealing_public_pem(fresh), "use": "seal", "overlap_s": 0}
    _, key = await admin.call("POST", "/v1/agencies/family-benefits/keys", rotation)
    assert (key["use"], key["valid"]) == ("seal", True)
    _, keys = await admin.call("GET", "/v1/agencies/family-benefits/keys")
    valid = {key["key_id"]: key["valid"] for key in keys["keys"]}
    assert valid[sealing_key_id("family-benefits")] is False  # retired by the rotation of its own use
    assert valid[sqlite_world.keys["family-benefits"].key_id] is True  # the signing key stays

    old_key_only = sqlite_world.client("family-benefits", session)
    with pytest.raises(UnverifiedAnswer, match="not one of ours"):
        await old_key_only.exchange(**INCOME)
    rotated = sqlite_world.client("family-benefits", session)
    rotated._sealing_keys["fb-seal-2027"] = fresh
    assert (await rotated.exchange(**INCOME)).data == {"taxable_income": 35400, "year": 2025}

    await admin.call("POST", "/v1/agencies/family-benefits/keys/fb-seal-2027/revoke", {"reason": "lost"})
    with pytest.raises(HubProblem) as refused:
        await rotated.exchange(**INCOME)
    assert (refused.value.status, refused.value.name) == (403, "no-sealing-key")
    [record] = await sqlite_world.hub.audit.records(exchange=refused.value.exchange)
    assert (record.outcome, record.reason, record.sealed_digest) == ("refused", "no-sealing-key", None)


async def test_a_key_of_one_use_is_refused_for_the_other(
    sqlite_world: DemoWorld, session: aiohttp.ClientSession
) -> None:
    admin = sqlite_world.client("admin-desk", session)
    ed25519 = public_key_pem(generate_key().public_key())
    x25519 = sealing_public_pem(X25519PrivateKey.generate())
    for pem, use in ((ed25519, "seal"), (x25519, "sign"), (x25519, None), (x25519, "encrypt")):
        body = {"key_id": "k-1", "public_key_pem": pem, **({} if use is None else {"use": use})}
        with pytest.raises(HubProblem) as refused:
            await admin.call("POST", "/v1/agencies/family-benefits/keys", body)
        assert (refused.value.status, refused.value.name) == (422, "invalid")
    # A sealing key never signs: a request naming one is refused as an unknown key.
    sealing_key = SigningKey(sealing_key_id("family-benefits"), generate_key())
    impostor = sqlite_world.client("family-benefits", session)
    impostor._key = sealing_key
    with pytest.raises(HubProblem) as refused:
        await impostor.exchange(**INCOME)
    assert (refused.value.status, refused.value.name) == (401, "unknown-key")


Forge = Callable[[RecordRequest, dict[str, Any], SigningKey], dict[str, Any]]


def _sealed(data: dict[str, Any], fields: Any, exchange: str, recipient: Recipient, key: SigningKey) -> dict[str, Any]:
    """A holder's envelope saying `fields`, sealing `data` whatever it holds."""
    enc, sender = SUITE.create_sender_context(_kem(recipient), HPKE_INFO)
    ct = sender.seal(json.dumps(data).encode(), exchange.encode())
    return sign_envelope(key, exchange, fields, recipient.key_id, enc, ct)


def _kem(recipient: Recipient) -> Any:
    return KEMKey.from_pyca_cryptography_key(recipient.public_key)


def _other(record: RecordRequest) -> Recipient:
    return Recipient(record.recipient.key_id if record.recipient else "", X25519PrivateKey.generate().public_key())


def _retampered(envelope: dict[str, str]) -> dict[str, str]:
    """The envelope with a byte of its ciphertext changed after it was signed."""
    payload = json.loads(unb64url(envelope["payload"]))
    ct = bytearray(unb64url(payload["sealed"]["ct"]))
    ct[0] ^= 1
    payload["sealed"]["ct"] = b64url(bytes(ct))
    return {**envelope, "payload": b64url(json.dumps(payload).encode())}


REPLAYED: list[dict[str, Any]] = []


def _replayed(record: RecordRequest, data: dict[str, Any], key: SigningKey) -> dict[str, Any]:
    assert record.recipient is not None
    if not REPLAYED:
        REPLAYED.append(seal(data, record.fields, record.exchange, record.recipient, key))
    return {"sealed": REPLAYED[0]}


# Holders the hub refuses (502 bad-seal): what each returns instead of its sealed answer.
REFUSED_BY_THE_HUB: dict[str, Forge] = {
    "more fields than asked": lambda record, data, key: {
        "sealed": _sealed(data, [*FIELDS, "iban"], record.exchange, record.recipient, key)  # type: ignore[arg-type]
    },
    "a wrong recipient key": lambda record, data, key: {
        "sealed": seal(data, record.fields, record.exchange, Recipient("someone-else", _other(record).public_key), key)
    },
    "a tampered ciphertext": lambda record, data, key: {
        "sealed": _retampered(seal(data, record.fields, record.exchange, record.recipient, key))  # type: ignore[arg-type]
    },
    "another key's signature": lambda record, data, key: {
        "sealed": seal(data, record.fields, record.exchange, record.recipient, SigningKey(key.key_id, generate_key()))  # type: ignore[arg-type]
    },
    "the record in clear": lambda record, data, key: {"data": data},
}
# Holders whose answer the hub cannot tell from a good one (it cannot open it): the requester's client refuses it.
REFUSED_BY_THE_REQUESTER: dict[str, Forge] = {
    "more fields sealed than listed": lambda record, data, key: {
        "sealed": _sealed(data, list(FIELDS), record.exchange, record.recipient, key)  # type: ignore[arg-type]
    },
    "sealed to another key under the requester's key id": lambda record, data, key: {
        "sealed": seal(data, record.fields, record.exchange, _other(record), key)
    },
}


def _forging(forge: Forge) -> type[Adapter]:
    class Forging(Adapter):
        """A holder's adapter that answers a sealed request otherwise than PROTOCOL.md says."""

        def _delivered(self, record: RecordRequest, data: dict[str, Any]) -> dict[str, Any]:
            return forge(record, data, self._key) if record.recipient is not None else {"data": data}

    return Forging


async def pension(request: RecordRequest) -> dict[str, Any]:
    return PENSION


@pytest.mark.parametrize("misdeed", sorted(REFUSED_BY_THE_HUB))
async def test_a_holder_answering_otherwise_is_refused_and_audited(
    misdeed: str, sqlite_world: DemoWorld, session: aiohttp.ClientSession
) -> None:
    async with AsyncExitStack() as stack:
        kind = _forging(REFUSED_BY_THE_HUB[misdeed])
        await add_holder(sqlite_world, stack, "pension-fund", pension, fields=FIELDS, kind=kind)
        await seal_category(sqlite_world, session, "pension")
        with pytest.raises(HubProblem) as refused:
            await sqlite_world.client("family-benefits", session).exchange(PIETER, "pension", "benefit-eligibility")
    expected = "bad-holder-answer" if misdeed == "the record in clear" else "bad-seal"
    assert (refused.value.status, refused.value.name) == (502, expected)
    [record] = await sqlite_world.hub.audit.records(exchange=refused.value.exchange)
    assert (record.outcome, record.reason, record.holder, record.sealed_digest) == (
        "failed",
        expected,
        "pension-fund",
        None,
    )


async def test_an_envelope_replayed_from_another_exchange_is_refused(
    sqlite_world: DemoWorld, session: aiohttp.ClientSession
) -> None:
    REPLAYED.clear()
    async with AsyncExitStack() as stack:
        await add_holder(sqlite_world, stack, "pension-fund", pension, fields=FIELDS, kind=_forging(_replayed))
        await seal_category(sqlite_world, session, "pension")
        client = sqlite_world.client("family-benefits", session)
        first = await client.exchange(PIETER, "pension", "benefit-eligibility")
        assert first.data == {"amount": 1820, "year": 2026}
        with pytest.raises(HubProblem) as refused:
            await client.exchange(PIETER, "pension", "benefit-eligibility")
    assert (refused.value.status, refused.value.name) == (502, "bad-seal")
    assert "not this one" in refused.value.detail
    [record] = await sqlite_world.hub.audit.records(exchange=refused.value.exchange)
    assert (record.outcome, record.reason) == ("failed", "bad-seal")


@pytest.mark.parametrize("misdeed", sorted(REFUSED_BY_THE_REQUESTER))
async def test_what_the_hub_cannot_see_the_requester_refuses(
    misdeed: str, sqlite_world: DemoWorld, session: aiohttp.ClientSession
) -> None:
    async with AsyncExitStack() as stack:
        kind = _forging(REFUSED_BY_THE_REQUESTER[misdeed])
        await add_holder(sqlite_world, stack, "pension-fund", pension, fields=FIELDS, kind=kind)
        await seal_category(sqlite_world, session, "pension")
        with pytest.raises(UnverifiedAnswer) as refused:
            await sqlite_world.client("family-benefits", session).exchange(PIETER, "pension", "benefit-eligibility")
    assert refused.value.kind == "bad-seal"
    [record] = await sqlite_world.hub.audit.records(category="pension", kind="exchange")
    assert record.outcome == "delivered" and record.sealed_digest is not None  # the hub relayed what it could not read


async def test_a_sealed_record_is_kept_to_the_rules_fields_by_the_holder(
    sqlite_world: DemoWorld, session: aiohttp.ClientSession
) -> None:
    asked: list[RecordRequest] = []

    async def answer(request: RecordRequest) -> dict[str, Any]:
        asked.append(request)
        return PENSION

    async with AsyncExitStack() as stack:
        await add_holder(sqlite_world, stack, "pension-fund", answer, fields=FIELDS)
        await seal_category(sqlite_world, session, "pension")
        result = await sqlite_world.client("family-benefits", session).exchange(
            PIETER, "pension", "benefit-eligibility"
        )
    assert result.data == {"amount": 1820, "year": 2026}
    [request] = asked
    assert request.fields == FIELDS and request.recipient is not None
    assert request.recipient.key_id == sealing_key_id("family-benefits")
