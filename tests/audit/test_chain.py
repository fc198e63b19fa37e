"""The hash chain and its checkpoints as pure functions: a linked log verifies; every kind of tampering is
found at the record it touched, with the reason; checkpoints stay verifiable across key rotations."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from broker.audit import chain
from broker.base.signing import SigningKey, generate_key
from tests.audit.records import START, attach, checkpoints, linked, rehashed, renumbered, unlinked, verify

KEY = SigningKey("crossroads-hub", generate_key())
OTHER = SigningKey("crossroads-hub", generate_key())


def test_an_untouched_log_verifies_up_to_its_newest_checkpoint() -> None:
    records = linked(25)
    verdict = verify(records, checkpoints(records, KEY, 10, 20), KEY)
    assert (verdict.ok, verdict.records, verdict.head) == (True, 25, records[-1]["hash"])
    assert verdict.checkpoint is not None and verdict.checkpoint.size == 20
    assert verdict.unsigned == 5
    assert verdict.as_json()["checkpoint"]["size"] == 20


def test_an_empty_log_verifies() -> None:
    verdict = verify([], [], KEY)
    assert (verdict.ok, verdict.records, verdict.head) == (True, 0, chain.GENESIS)


def test_linking_continues_from_the_head() -> None:
    first, rest = unlinked(5), unlinked(5, first_seq=6)
    records = attach(chain.EMPTY, first)
    records += attach(chain.Head(5, records[-1]["hash"]), rest)
    assert records == linked(10)


def test_the_hash_covers_content_and_previous_hash() -> None:
    [record] = linked(1)
    assert chain.link_hash(chain.GENESIS, {**record, "purpose": "fraud-investigation"}) != record["hash"]
    assert chain.link_hash("11" * 32, record) != record["hash"]
    assert chain.link_hash(chain.GENESIS, {**record, "hash": "x", "extra": 1}) == record["hash"]
    assert chain.link_hash(chain.GENESIS, {**record, "reason": ""}) == record["hash"]  # "" is hashed as null


def test_a_changed_record_is_named() -> None:
    records = linked(12)
    records[4] = {**records[4], "purpose": "fraud-investigation"}
    broken = verify(records, [], KEY).broken
    assert broken is not None and (broken.position, broken.seq, broken.reason) == (5, 5, "changed")


def test_a_changed_and_rehashed_record_is_named() -> None:
    records = linked(12)
    records[4] = rehashed({**records[4], "requester": "municipality-leuven"})
    verdict = verify(records, [], KEY)
    assert verdict.broken is not None
    assert (verdict.broken.position, verdict.broken.seq, verdict.broken.reason) == (5, 5, "changed")
    assert (verdict.records, verdict.head) == (4, records[3]["hash"])


def test_a_deleted_record_is_named_with_or_without_renumbering() -> None:
    records = linked(12)
    del records[6]
    for tampered in (records, renumbered(records)):
        broken = verify(tampered, [], KEY).broken
        assert broken is not None and (broken.position, broken.reason) == (7, "deleted"), broken


def test_an_inserted_record_is_named_however_it_was_linked() -> None:
    records = linked(12)
    forged = {**unlinked(1, first_seq=99)[0], "subject": "00000000097", "position": 8}
    consistent = rehashed({**forged, "prev_hash": records[6]["hash"]})
    garbage = {**forged, "prev_hash": "ab" * 32, "hash": "cd" * 32}
    for inserted in (consistent, garbage):
        tampered = renumbered([*records[:7], inserted, *records[7:]])
        broken = verify(tampered, [], KEY).broken
        assert broken is not None and (broken.position, broken.seq, broken.reason) == (8, 99, "inserted"), broken


def test_reordered_records_are_named_in_the_store_and_in_a_file() -> None:
    records = linked(12)
    swapped_positions = [*records[:3], {**records[4], "position": 4}, {**records[3], "position": 5}, *records[5:]]
    swapped_lines = [*records[:3], records[4], records[3], *records[5:]]
    for tampered in (swapped_positions, swapped_lines):
        broken = verify(tampered, [], KEY).broken
        assert broken is not None and (broken.position, broken.seq, broken.reason) == (4, 5, "reordered"), broken


def test_a_rewritten_history_is_caught_by_the_checkpoint_that_covers_it() -> None:
    records = linked(20)
    signed = checkpoints(records, KEY, 10, 20)
    rewritten = records[:12] + attach(
        chain.Head(12, records[11]["hash"]), [{**record, "purpose": "fraud-investigation"} for record in records[12:]]
    )
    verdict = verify(rewritten, signed, KEY)
    assert verdict.broken is not None
    assert (verdict.broken.position, verdict.broken.reason) == (11, "checkpoint-mismatch")
    assert (verdict.records, verdict.head) == (10, records[9]["hash"])


def test_a_truncated_log_is_caught_by_its_checkpoint() -> None:
    records = linked(20)
    broken = verify(records[:17], checkpoints(records, KEY, 20), KEY).broken
    assert broken is not None and (broken.position, broken.reason) == (18, "truncated")


def test_a_forged_checkpoint_fails() -> None:
    records = linked(20)
    signed = checkpoints(records, KEY, 10, 20)
    signed[0] = chain.Checkpoint(
        10, records[8]["hash"], signed[0].at, KEY.key_id, signed[0].public_key_pem, signed[0].signature
    )
    broken = verify(records, signed, KEY).broken
    assert broken is not None and (broken.position, broken.reason) == (10, "bad-checkpoint-signature")


def test_the_newest_checkpoint_must_be_signed_by_a_trusted_key() -> None:
    records = linked(20)
    broken = verify(records, checkpoints(records, OTHER, 10, 20), KEY).broken
    assert broken is not None and broken.reason == "untrusted-checkpoint"


def test_checkpoints_of_a_rotated_key_stay_verifiable() -> None:
    records = linked(20)
    signed = [*checkpoints(records, OTHER, 10, 20), *checkpoints(records, KEY, 20)]
    verdict = verify(records, signed, KEY)
    assert verdict.ok and verdict.checkpoint is not None and verdict.checkpoint.signed_by([KEY.public_key])
    assert chain.Checkpoint.from_json(signed[0].as_json()) == signed[0]
    assert signed[0].signature_valid()


def test_a_checkpoint_is_due_by_count_by_time_and_after_a_key_rotation() -> None:
    head = chain.Head(10, "aa" * 32)
    last = chain.sign_checkpoint(KEY, head, START)
    assert chain.checkpoint_due(None, head, START, 100, 60, KEY)
    assert not chain.checkpoint_due(None, chain.EMPTY, START, 100, 60, KEY)
    assert not chain.checkpoint_due(last, head, START + timedelta(hours=1), 100, 60, KEY)
    assert not chain.checkpoint_due(last, chain.Head(20, "bb" * 32), START + timedelta(seconds=59), 100, 60, KEY)
    assert chain.checkpoint_due(last, chain.Head(20, "bb" * 32), START + timedelta(seconds=60), 100, 60, KEY)
    assert chain.checkpoint_due(last, chain.Head(110, "bb" * 32), START, 100, 60, KEY)
    assert chain.checkpoint_due(last, head, START, 100, 60, OTHER)


@given(st.integers(2, 30), st.data())
def test_any_single_change_is_found_at_its_record(count: int, data: st.DataObject) -> None:
    records = linked(count)
    index = data.draw(st.integers(0, count - 1))
    name = data.draw(st.sampled_from(["subject", "requester", "purpose", "outcome", "status", "at", "seq"]))
    changed = {"status": 403, "at": chain.timestamp(START - timedelta(days=1)), "seq": 10_000}.get(name, "tampered")
    records[index] = {**records[index], name: changed}
    broken = verify(records, [], KEY, batch=data.draw(st.integers(1, 10))).broken
    assert broken is not None and (broken.position, broken.reason) == (index + 1, "changed")


@given(st.integers(3, 30), st.data())
def test_any_deletion_or_swap_is_found_where_it_happened(count: int, data: st.DataObject) -> None:
    records = linked(count)
    index = data.draw(st.integers(0, count - 2))
    deleted = renumbered(records[:index] + records[index + 1 :])
    swapped = renumbered([*records[:index], records[index + 1], records[index], *records[index + 2 :]])
    for tampered, reason in ((deleted, "deleted"), (swapped, "reordered")):
        broken = verify(tampered, [], KEY).broken
        assert broken is not None and (broken.position, broken.reason) == (index + 1, reason)


@pytest.mark.parametrize("records", [linked(3)])
def test_verdict_json_names_the_break(records: list[dict[str, object]]) -> None:
    records[1] = {**records[1], "subject": "x"}
    document = verify(records, [], KEY).as_json()
    assert document == {
        "ok": False,
        "records": 1,
        "head": records[0]["hash"],
        "break": {
            "position": 2,
            "seq": 2,
            "reason": "changed",
            "detail": "seq 2 does not match its hash: it was changed",
        },
    }
