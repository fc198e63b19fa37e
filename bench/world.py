"""The benchmark's world: a hub key, 16 requesting agencies and 4 holders with keys, 8 categories, 80 purposes,
a rule set of 10 or 10,000 rules, a directory of `rows` holdings and relationships bulk-inserted into the store,
and consents for the exchanges the load generator asks (every measured exchange needs one).

The agencies, keys, names and rules go in through the hub's own services (`open_hub`, `load_world`); only the
bulk rows (directory and consents) are inserted with SQLAlchemy Core into those packages' tables, as a restore
would, because a million rows one ORM object at a time would take longer than the whole benchmark.
"""

from __future__ import annotations

import hashlib
import random
import uuid
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import insert

from broker.base.keyfiles import write_private_key
from broker.base.signing import load_private_key, public_key_pem
from broker.base.store import create_engine
from broker.cli.world import load_world
from broker.config import Config
from broker.hub import open_hub
from broker.schema.migrations import upgrade
from consent.models import ConsentRecord
from directory.models import Holding, Relationship
from policies.rules import Rule

HUB_KEY_ID = "crossroads-hub"
REQUESTERS = [f"bench-req-{index:02d}" for index in range(16)]
HOLDERS = [f"bench-holder-{index}" for index in range(4)]
CATEGORIES = [f"bench-cat-{index}" for index in range(8)]
PURPOSES = [f"bench-purpose-{index:02d}" for index in range(80)]
ASKED_PURPOSES = PURPOSES[:4]  # what the load generator asks for: 16 x 8 x 4 = 512 distinct policy questions
ROLE = "role:bench-requesters"
SINCE = datetime(2020, 1, 1, tzinfo=UTC)
CHUNK = 20_000  # rows per bulk insert


@dataclass(frozen=True)
class Exchange:
    """One question the load generator asks: the requester has the subject as a client, the holder holds
    the category for it, a white rule needing consent covers it, and the subject consented."""

    requester: str
    subject: str
    category: str
    purpose: str
    holder: str


@dataclass(frozen=True)
class Layout:
    """Where things are: what the adapters' process, the hubs and the load generator need to know."""

    state_dir: str
    hub_key_path: str
    adapter_ports: dict[str, int]  # holder -> port
    exchanges: list[Exchange]

    def key_path(self, agency: str) -> Path:
        return Path(self.state_dir) / "keys" / f"{agency}.pem"

    def adapter_url(self, holder: str) -> str:
        return f"http://127.0.0.1:{self.adapter_ports[holder]}"

    def as_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Layout:
        return cls(
            data["state_dir"],
            data["hub_key_path"],
            data["adapter_ports"],
            [Exchange(**exchange) for exchange in data["exchanges"]],
        )


def holder_of(category: str) -> str:
    return HOLDERS[CATEGORIES.index(category) % len(HOLDERS)]


def subject_id(index: int) -> str:
    return f"9{index:010d}"


def make_keys(state_dir: Path) -> None:
    """Ed25519 keys for the hub and every agency, created once per state directory."""
    keys = state_dir / "keys"
    keys.mkdir(parents=True, exist_ok=True)
    for name in ["hub", *REQUESTERS, *HOLDERS]:
        if not (keys / f"{name}.pem").exists():
            write_private_key(keys / f"{name}.pem")


def layout(state_dir: Path, adapter_ports: dict[str, int], rows: int, asked: int, seed: int = 7) -> Layout:
    """The exchanges to ask, drawn from the directory `directory_rows` generates with the same seed."""
    rng = random.Random(seed)
    subjects = max(1, rows // 4)
    exchanges = []
    for index in rng.sample(range(subjects), min(asked, subjects)):
        requesters, categories = _subject_rows(index)
        category = rng.choice(categories)
        exchanges.append(
            Exchange(
                rng.choice(requesters), subject_id(index), category, rng.choice(ASKED_PURPOSES), holder_of(category)
            )
        )
    return Layout(str(state_dir), str(state_dir / "keys" / "hub.pem"), adapter_ports, exchanges)


def questions_of(requester: str, rows: int, count: int, purpose: str) -> Iterator[Exchange]:
    """`count` questions `requester` asks about its own clients (the directory's subjects it has a relationship
    with, in order, over again once all are asked): each about the first category the directory holds for them."""
    clients = [index for index in range(max(1, rows // 4)) if requester in _subject_rows(index)[0]]
    for number in range(count):
        index = clients[number % len(clients)]
        category = _subject_rows(index)[1][0]
        yield Exchange(requester, subject_id(index), category, purpose, holder_of(category))


def _subject_rows(index: int) -> tuple[list[str], list[str]]:
    """The subject's two requesters (relationships) and two categories (holdings), fixed by its index."""
    digest = hashlib.blake2b(index.to_bytes(8, "big"), digest_size=4).digest()
    first, second = digest[0] % len(REQUESTERS), digest[1] % (len(REQUESTERS) - 1)
    requesters = [REQUESTERS[first], REQUESTERS[(first + 1 + second) % len(REQUESTERS)]]
    one, other = digest[2] % len(CATEGORIES), digest[3] % (len(CATEGORIES) - 1)
    categories = [CATEGORIES[one], CATEGORIES[(one + 1 + other) % len(CATEGORIES)]]
    return requesters, categories


def directory_rows(rows: int) -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """(table, chunk of rows) for `rows` rows in all: each subject has two holdings and two relationships."""
    holdings: list[dict[str, Any]] = []
    relationships: list[dict[str, Any]] = []
    for index in range(max(1, rows // 4)):
        subject = subject_id(index)
        requesters, categories = _subject_rows(index)
        for category in categories:
            holdings.append(
                {
                    "holder": holder_of(category),
                    "category": category,
                    "subject": subject,
                    "valid_from": SINCE,
                    "declared_at": SINCE,
                    "declared_by": "bench",
                }
            )
        for requester in requesters:
            relationships.append(
                {
                    "agency": requester,
                    "subject": subject,
                    "capacity": "beneficiary",
                    "valid_from": SINCE,
                    "declared_at": SINCE,
                    "declared_by": "bench",
                }
            )
        if len(holdings) >= CHUNK:
            yield Holding.__tablename__, holdings
            yield Relationship.__tablename__, relationships
            holdings, relationships = [], []
    if holdings:
        yield Holding.__tablename__, holdings
        yield Relationship.__tablename__, relationships


def consent_rows(exchanges: list[Exchange]) -> list[dict[str, Any]]:
    return [
        {
            "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"bench/{exchange.subject}/{exchange.requester}")),
            "subject": exchange.subject,
            "grantee": exchange.requester,
            "categories": [exchange.category],
            "purposes": [exchange.purpose],
            "valid_from": SINCE,
            "valid_until": None,
            "channel": "portal",
            "evidence": "benchmark",
            "created_at": SINCE,
            "created_by": "bench",
        }
        for exchange in {(e.subject, e.requester): e for e in exchanges}.values()
    ]


def rule_set(size: int) -> list[Rule]:
    """10 role rules, or 10,000 rules of which 9,984 name one agency, category and purpose each."""
    if size == 10:
        return [
            *(Rule(f"bench-{category}", ROLE, category, "*", "white", consent=True) for category in CATEGORIES),
            Rule("bench-black", ROLE, "*", PURPOSES[-1], "black"),
            Rule("bench-grey", f"agency:{REQUESTERS[0]}", CATEGORIES[0], PURPOSES[-2], "grey"),
        ]
    if size == 10_000:
        rules = [
            Rule(f"bench-{requester}-{category}-{purpose}", f"agency:{requester}", category, purpose, "white", True)
            for requester in REQUESTERS
            for category in CATEGORIES
            for purpose in PURPOSES[:-2]
        ]
        rules += [Rule(f"bench-other-{n}", "role:bench-other", "*", "*", "black") for n in range(size - len(rules))]
        return rules
    raise ValueError("the benchmark has rule sets of 10 and 10,000 rules")


def seed_world(layout: Layout) -> dict[str, Any]:
    """The world file's part the hub's services load: agencies with keys, names, role membership."""

    def agency(name: str, url: str) -> dict[str, Any]:
        key = load_private_key(layout.key_path(name).read_bytes())
        return {
            "id": name,
            "name": name,
            "adapter_url": url,
            "keys": [{"key_id": f"{name}-1", "public_key_pem": public_key_pem(key.public_key())}],
        }

    return {
        "categories": [{"name": name} for name in CATEGORIES],
        "purposes": [{"name": name} for name in PURPOSES],
        "agencies": [
            *({**agency(name, "http://127.0.0.1:9"), "roles": ["bench-requesters"]} for name in REQUESTERS),
            *(agency(name, layout.adapter_url(name)) for name in HOLDERS),
        ],
    }


async def build(database_url: str, layout: Layout, rows: int) -> dict[str, float]:
    """Migrate the store, load the world through the hub's services and bulk-insert the rows; seconds taken."""
    started = datetime.now(UTC)
    engine = create_engine(database_url)
    try:
        await upgrade(engine)
        config = Config(
            state_dir=Path(layout.state_dir), database_url=database_url, hub_key_path=Path(layout.hub_key_path)
        )
        async with open_hub(config) as hub:
            await load_world(hub, seed_world(layout), actor="bench", reason="benchmark world")
        loaded = datetime.now(UTC)
        async with engine.begin() as connection:
            for table, chunk in directory_rows(rows):
                model = Holding if table == Holding.__tablename__ else Relationship
                await connection.execute(insert(model), chunk)
            await connection.execute(insert(ConsentRecord), consent_rows(layout.exchanges))
    finally:
        await engine.dispose()
    done = datetime.now(UTC)
    return {"world_s": (loaded - started).total_seconds(), "bulk_rows_s": (done - loaded).total_seconds()}


async def publish_rules(database_url: str, layout: Layout, size: int) -> None:
    """Publish the rule set of `size` rules (role memberships kept) as a new policy version."""
    config = Config(state_dir=Path(layout.state_dir), database_url=database_url, hub_key_path=Path(layout.hub_key_path))
    groups = [("g", f"agency:{name}", ROLE) for name in REQUESTERS]
    async with open_hub(config) as hub:
        await hub.policies.replace(rule_set(size), groups, "bench", f"benchmark: {size} rules", datetime.now(UTC))
