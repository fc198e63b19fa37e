"""The audit log's hash chain and signed checkpoints, as pure functions: how a record is hashed, how the
sequencer links records, how a checkpoint is signed, and how a log (from the store or an export) is
verified, naming the first record where it breaks and why.
"""

from __future__ import annotations

import base64
import hashlib
import operator
from collections import deque
from collections.abc import Collection, Iterable, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
import rfc8785
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from broker.base.signing import SigningKey, load_public_key, public_key_pem

GENESIS = "0" * 64  # the previous hash of the first record
CHECKPOINT_CONTEXT = b"crossroads-audit-checkpoint/1\n"
# The fields a record's hash covers (format 1); columns added later are covered as COVERED_WHEN_SET says.
CHAIN_FIELDS = (
    "seq",
    "position",
    "at",
    "kind",
    "exchange",
    "requester",
    "key_id",
    "subject",
    "category",
    "purpose",
    "holder",
    "zone",
    "outcome",
    "status",
    "reason",
    "rule_id",
    "policy_version",
    "fields",
    "emergency",
    "consent_id",
    "review_id",
    "latency_ms",
    "request_digest",
    "response_digest",
)
SORTED_FIELDS = tuple(sorted(CHAIN_FIELDS))  # RFC 8785 orders members by name; these names are ASCII
_chain_values = operator.itemgetter(*SORTED_FIELDS)
PLAIN = frozenset({str, bool, type(None)})  # written alike by every JSON encoder
# Fields added since, covered where a record has a value for them: a record written before they existed (null)
# hashes as it always did, so old chains and exports still verify, while a value set, changed or removed later
# changes the content, so it breaks the chain like any other change.
COVERED_WHEN_SET = ("ground", "sealed_digest")
MAX_SAFE_INTEGER = 2**53 - 1  # RFC 8785 (I-JSON) integers
LOOKAHEAD = 64  # records the verifier reads ahead to tell a deletion from a move or an insertion


def timestamp(at: datetime) -> str:
    """A record's or checkpoint's time as it is hashed and exported: RFC 3339, UTC, microseconds."""
    return at.isoformat(timespec="microseconds").replace("+00:00", "Z")


def content(record: Mapping[str, Any]) -> bytes:
    """The canonical content of a record (RFC 8785 JSON of its chain fields, and of those COVERED_WHEN_SET that it
    has); an empty string counts as null, so that formats without a null (CSV) carry the same content.

    orjson writes the same bytes as RFC 8785 for what records hold (ASCII names sorted, strings escaped alike,
    integers within 2^53, non-integral floats in the range where both print the shortest round-trip digits
    without an exponent), ten times faster than the standard library's encoder (which was itself three times
    faster than the RFC 8785 one); any other value goes through the RFC 8785 encoder.
    """
    values = _chain_values(record)
    if "" in values:
        values = tuple(None if value == "" else value for value in values)
    document = dict(zip(SORTED_FIELDS, values, strict=True))
    added = {name: record[name] for name in COVERED_WHEN_SET if record.get(name) not in (None, "")}
    if added:
        document = dict(sorted({**document, **added}.items()))
    if all(map(_same_in_both, [value for value in document.values() if type(value) not in PLAIN])):
        try:
            return orjson.dumps(document)
        except orjson.JSONEncodeError:  # a lone surrogate: the RFC 8785 encoder says what is wrong with it
            pass
    return rfc8785.dumps(document)


def _same_in_both(value: object) -> bool:
    """Whether orjson writes `value` as RFC 8785 does."""
    if value is None or isinstance(value, str | bool):
        return True
    if isinstance(value, int):
        return -MAX_SAFE_INTEGER <= value <= MAX_SAFE_INTEGER
    if isinstance(value, float):  # not integral (1.0 is "1" in RFC 8785), and no exponent in either notation
        return not value.is_integer() and 1e-4 <= abs(value) < 1e16
    if isinstance(value, list):
        return all(isinstance(item, str) for item in value)
    return False


def link_hash(previous: str, record: Mapping[str, Any]) -> str:
    """SHA-256 over the previous record's hash (32 bytes) followed by this record's canonical content."""
    return hashlib.sha256(bytes.fromhex(previous) + content(record)).hexdigest()


@dataclass(frozen=True)
class Head:
    """The end of the chain: how many records it links and the hash of the last one."""

    size: int
    hash: str


EMPTY = Head(0, GENESIS)


@dataclass(frozen=True)
class Link:
    seq: int
    position: int
    prev_hash: str
    hash: str


def link(head: Head, records: Iterable[Mapping[str, Any]]) -> list[Link]:
    """Append `records` (without chain fields, in the sequencer's order) to the chain ending at `head`."""
    links = []
    for record in records:
        position = head.size + 1
        digest = link_hash(head.hash, {**record, "position": position})
        links.append(Link(record["seq"], position, head.hash, digest))
        head = Head(position, digest)
    return links


@dataclass(frozen=True)
class Checkpoint:
    """A signed statement by the hub: the chain had `size` records ending in `head` at time `at`.

    The signer's public key travels with the checkpoint, so it stays verifiable after the hub's key rotates;
    whether that key is to be trusted is the verifier's decision (see ChainVerifier).
    """

    size: int
    head: str
    at: datetime
    key_id: str
    public_key_pem: str
    signature: str  # base64 of the Ed25519 signature over message()

    def message(self) -> bytes:
        return checkpoint_message(self.size, self.head, self.at, self.key_id)

    def signature_valid(self) -> bool:
        try:
            load_public_key(self.public_key_pem).verify(base64.b64decode(self.signature), self.message())
        except (InvalidSignature, ValueError):
            return False
        return True

    def signed_by(self, keys: Collection[Ed25519PublicKey]) -> bool:
        try:
            mine = _raw(load_public_key(self.public_key_pem))
        except ValueError:
            return False
        return any(mine == _raw(key) for key in keys)

    def as_json(self) -> dict[str, Any]:
        return {
            "size": self.size,
            "head": self.head,
            "at": timestamp(self.at),
            "key_id": self.key_id,
            "public_key_pem": self.public_key_pem,
            "signature": self.signature,
        }

    @classmethod
    def from_json(cls, document: Mapping[str, Any]) -> Checkpoint:
        return cls(
            int(document["size"]),
            document["head"],
            datetime.fromisoformat(document["at"]),
            document["key_id"],
            document["public_key_pem"],
            document["signature"],
        )


def checkpoint_message(size: int, head: str, at: datetime, key_id: str) -> bytes:
    return CHECKPOINT_CONTEXT + rfc8785.dumps({"size": size, "head": head, "at": timestamp(at), "key_id": key_id})


def sign_checkpoint(key: SigningKey, head: Head, at: datetime) -> Checkpoint:
    signature = key.private_key.sign(checkpoint_message(head.size, head.hash, at, key.key_id))
    return Checkpoint(
        head.size, head.hash, at, key.key_id, public_key_pem(key.public_key), base64.b64encode(signature).decode()
    )


def checkpoint_due(
    last: Checkpoint | None, head: Head, now: datetime, every: int, interval_s: float, key: SigningKey
) -> bool:
    """Sign a new checkpoint when `every` records were linked since the last one, when records have waited
    `interval_s` seconds for one, or when the hub's key is not the one that signed the last."""
    if last is None:
        return head.size > 0
    if not last.signed_by([key.public_key]):
        return True
    if head.size == last.size:
        return False
    return head.size - last.size >= every or (now - last.at).total_seconds() >= interval_s


def signers(checkpoints: Iterable[Checkpoint]) -> list[Ed25519PublicKey]:
    """The public keys the checkpoints name: the hub's keys, current and past, as the log records them. One that
    does not load vouches for nothing (its checkpoint fails as a bad signature)."""
    keys = []
    for pem in dict.fromkeys(checkpoint.public_key_pem for checkpoint in checkpoints):
        with suppress(ValueError):
            keys.append(load_public_key(pem))
    return keys


def _raw(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


@dataclass(frozen=True)
class ChainBreak:
    """Where verification stopped: the record's position in the chain (and seq, when there is a record
    there), and why: changed, deleted, inserted, reordered, checkpoint-mismatch, bad-checkpoint-signature,
    truncated or untrusted-checkpoint."""

    position: int
    seq: int | None
    reason: str
    detail: str

    def as_json(self) -> dict[str, Any]:
        return {"position": self.position, "seq": self.seq, "reason": self.reason, "detail": self.detail}


@dataclass(frozen=True)
class Verdict:
    records: int  # records verified, from the start of the chain up to any break
    head: str  # the hash of the last verified record
    checkpoint: Checkpoint | None  # the newest checkpoint verified against the chain
    broken: ChainBreak | None

    @property
    def ok(self) -> bool:
        return self.broken is None

    @property
    def unsigned(self) -> int:
        """Verified records after the newest checkpoint: no signature covers them yet."""
        return self.records - (self.checkpoint.size if self.checkpoint else 0)

    def as_json(self) -> dict[str, Any]:
        document: dict[str, Any] = {"ok": self.ok, "records": self.records, "head": self.head}
        if self.broken is not None:
            document["break"] = self.broken.as_json()
        else:
            document["checkpoint"] = None if self.checkpoint is None else self.checkpoint.as_json()
            document["unsigned"] = self.unsigned
        return document


class Broken(Exception):
    def __init__(self, broken: ChainBreak) -> None:
        super().__init__(broken.detail)
        self.broken = broken


class ChainVerifier:
    """Recompute a chain fed in position order, in batches, and check it against the signed checkpoints.

    Records are mappings in export form (see broker.audit.log.record_json), from `start` on. The newest checkpoint
    must be signed by one of `trusted`; older checkpoints may be signed by keys the hub has since rotated away
    from: the trusted newest one covers the records they cover. Once broken, further records are ignored.
    """

    def __init__(
        self, checkpoints: Sequence[Checkpoint], trusted: Collection[Ed25519PublicKey], start: Head = EMPTY
    ) -> None:
        self._checkpoints = {checkpoint.size: checkpoint for checkpoint in checkpoints}
        self._trusted = trusted
        self._ahead: deque[Mapping[str, Any]] = deque()
        self._recent: deque[tuple[int, int, str]] = deque(maxlen=LOOKAHEAD)  # (position, seq, hash)
        self._start = start  # where the records fed begin: the chain's start, or a span's (verify_spans.py)
        self._head = start
        self._checkpoint: Checkpoint | None = None
        self._broken: ChainBreak | None = None

    @property
    def verified(self) -> int:
        return self._head.size

    def feed(self, records: Iterable[Mapping[str, Any]]) -> None:
        if self._broken is not None:
            return
        self._ahead.extend(records)
        self._drain(LOOKAHEAD)

    def finish(self) -> Verdict:
        self._drain(0)
        if self._broken is None:
            self._broken = self._end_checks()
        if self._broken is None:
            return Verdict(self._head.size, self._head.hash, self._checkpoint, None)
        good = self._broken.position - 1
        return Verdict(good, self._hash_at(good), self._checkpoint, self._broken)

    def _drain(self, keep: int) -> None:
        while self._broken is None and len(self._ahead) > keep:
            record = self._ahead.popleft()
            try:
                self._check(record)
            except Broken as stop:
                self._broken = stop.broken
                self._ahead.clear()

    def _check(self, record: Mapping[str, Any]) -> None:
        expected, seq = self._head.size + 1, record["seq"]
        if record["position"] != expected:
            raise Broken(self._misplaced(record, expected))
        if record["prev_hash"] != self._head.hash:
            raise Broken(self._unlinked(record, expected))
        if link_hash(record["prev_hash"], record) != record["hash"]:
            raise Broken(ChainBreak(expected, seq, "changed", f"seq {seq} does not match its hash: it was changed"))
        self._head = Head(expected, record["hash"])
        self._recent.append((expected, seq, record["hash"]))
        checkpoint = self._checkpoints.get(expected)
        if checkpoint is not None:
            self._check_checkpoint(checkpoint, seq)

    def _check_checkpoint(self, checkpoint: Checkpoint, seq: int) -> None:
        if not checkpoint.signature_valid():
            raise Broken(
                ChainBreak(
                    checkpoint.size,
                    seq,
                    "bad-checkpoint-signature",
                    f"the checkpoint at size {checkpoint.size} does not verify with the key it names "
                    f"({checkpoint.key_id})",
                )
            )
        if checkpoint.head != self._head.hash:
            since = self._checkpoint.size + 1 if self._checkpoint else 1
            raise Broken(
                ChainBreak(
                    since,
                    self._seq_at(since),
                    "checkpoint-mismatch",
                    f"the signed checkpoint at size {checkpoint.size} has head {checkpoint.head}, the chain "
                    f"{self._head.hash}: records at positions {since} to {checkpoint.size} were rewritten",
                )
            )
        self._checkpoint = checkpoint

    def _misplaced(self, record: Mapping[str, Any], expected: int) -> ChainBreak:
        position, seq = record["position"], record["seq"]
        if any(later["position"] == expected for later in self._ahead):
            return ChainBreak(expected, seq, "reordered", f"seq {seq} (position {position}) is out of order")
        if position > expected:
            missing = str(expected) if position == expected + 1 else f"{expected} to {position - 1}"
            return ChainBreak(expected, seq, "deleted", f"records at positions {missing} are missing before seq {seq}")
        return ChainBreak(expected, seq, "inserted", f"seq {seq} repeats position {position}")

    def _unlinked(self, record: Mapping[str, Any], expected: int) -> ChainBreak:
        """Why a record does not follow the one before it, from the records around it."""
        previous, seq = record["prev_hash"], record["seq"]
        follows = [position for position, _, digest in self._recent if digest == previous]
        if follows:
            return ChainBreak(
                follows[0] + 1,
                self._seq_at(follows[0] + 1),
                "inserted",
                f"records at positions {follows[0] + 1} to {expected - 1} are not in the chain: seq {seq} follows "
                f"position {follows[0]}",
            )
        if any(later["hash"] == previous for later in self._ahead):
            return ChainBreak(expected, seq, "reordered", f"seq {seq} comes before the record it follows")
        if any(later["prev_hash"] == self._head.hash for later in self._ahead):
            return ChainBreak(expected, seq, "inserted", f"seq {seq} at position {expected} is not in the chain")
        if self._recent and link_hash(previous, record) == record["hash"]:
            _, last_seq, _ = self._recent[-1]
            return ChainBreak(
                expected - 1,
                last_seq,
                "changed",
                f"seq {last_seq} is not the record seq {seq} was linked to: it was changed and rehashed",
            )
        return ChainBreak(expected, seq, "deleted", f"the record seq {seq} follows is missing before it")

    def _seq_at(self, position: int) -> int | None:
        return next((seq for seen, seq, _ in self._recent if seen == position), None)

    def _hash_at(self, position: int) -> str:
        """The verified chain's hash at `position`: the start, a recent record or the last good checkpoint."""
        if position == self._start.size:
            return self._start.hash
        recent = [digest for seen, _, digest in self._recent if seen == position]
        if recent:
            return recent[0]
        assert self._checkpoint is not None and self._checkpoint.size == position  # noqa: S101 -- `good` is a checkpoint or recent
        return self._checkpoint.head

    def _end_checks(self) -> ChainBreak | None:
        beyond = [size for size in self._checkpoints if size > self._head.size]
        if beyond:
            return ChainBreak(
                self._head.size + 1,
                None,
                "truncated",
                f"a signed checkpoint covers {max(beyond)} records, the log ends at {self._head.size}",
            )
        if self._checkpoint is not None and not self._checkpoint.signed_by(self._trusted):
            return ChainBreak(
                1,
                None,
                "untrusted-checkpoint",
                f"the newest checkpoint (size {self._checkpoint.size}) is signed by {self._checkpoint.key_id}, "
                "which is not a trusted hub key: nothing in the log is vouched for",
            )
        return None
