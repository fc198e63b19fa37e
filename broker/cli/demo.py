"""The demo world: a hub and six agencies on localhost, seeded with keys, directory, rules and consents,
brokering a scenario that shows each outcome: white, black, grey, consent, relationship, holder, audit.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import secrets
import signal
import socket
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache, partial
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from adapters.client import HubClient, HubProblem
from adapters.examples import demo_agencies as demo
from adapters.sealing import load_or_create_sealing_key, sealing_public_pem
from adapters.server import Adapter, Notification
from broker.accounts.credentials import CONSOLE_ROLES, hash_password
from broker.base.envelopes import unb64url
from broker.base.keyfiles import load_or_create
from broker.base.signing import SigningKey, public_key_pem
from broker.base.store import create_engine
from broker.cli.world import load_world
from broker.config import Config
from broker.hub import Hub, open_hub
from broker.schema.migrations import upgrade
from broker.server import HubRunner, build_app, server_settings
from directory.references import rfc3339
from policies.rules import parse_csv

HUB_KEY_ID = "crossroads-hub"
OPERATORS = {"admin-desk": "admin", "privacy-office": "privacy_officer", "citizen-portal": "citizen_portal"}
RULES = Path(__file__).resolve().parents[2] / "policies" / "default_rules.csv"
# Accesses for these purposes reach citizens' access logs only this many days after they happen.
EMBARGOES = {"fraud-investigation": 365}


@dataclass(frozen=True)
class Case:
    name: str
    requester: str
    request: dict[str, Any]
    expect: dict[str, Any]
    then: str | None = None  # what run_scenario shows after this case: `consent-lifecycle`, `emergency-review`,
    # `new-client`


FIRE = {"reason": "house fire overnight: the household needs emergency housing today"}

# Each case with the answer the hub gives it in the seeded world: Sofie has consented to her income
# being shared for benefit eligibility, Anna has not (until the demo gives it on her behalf); Jan consented
# too, then refused family benefits everything. Every case answers the same in a fresh world, in this
# order, so world.json replays; what changes state between cases happens in run_scenario only.
SCENARIO = [
    Case(
        "white: civil status delivered",
        "family-benefits",
        {"subject": demo.ANNA, "category": "civil-status", "purpose": "benefit-eligibility"},
        {"status": 200, "zone": "white", "problem": None},
    ),
    Case(
        "black: health record refused",
        "family-benefits",
        {"subject": demo.ANNA, "category": "health-record", "purpose": "benefit-eligibility"},
        {"status": 403, "zone": "black", "problem": "black-zone"},
    ),
    Case(
        "grey: employment status waits for a privacy officer",
        "family-benefits",
        {"subject": demo.JAN, "category": "employment-status", "purpose": "benefit-eligibility"},
        {"status": 202, "zone": "grey", "problem": None},
    ),
    Case(
        "consent: income refused without consent",
        "family-benefits",
        {"subject": demo.ANNA, "category": "income", "purpose": "benefit-eligibility"},
        {"status": 403, "zone": "white", "problem": "no-consent"},
        then="consent-lifecycle",
    ),
    Case(
        "consent: income delivered under consent, minimised",
        "family-benefits",
        {"subject": demo.SOFIE, "category": "income", "purpose": "benefit-eligibility"},
        {"status": 200, "zone": "white", "problem": None},
    ),
    Case(
        "refusal: Jan's refusal beats his consent",
        "family-benefits",
        {"subject": demo.JAN, "category": "income", "purpose": "benefit-eligibility"},
        {"status": 403, "zone": "white", "problem": "consent-refused"},
    ),
    Case(
        "legal mandate: a refusal does not stop a fraud investigation",
        "family-benefits",
        {"subject": demo.JAN, "category": "income", "purpose": "fraud-investigation"},
        {"status": 200, "zone": "white", "problem": None},
    ),
    Case(
        "consent: the municipality has no consent",
        "municipality-leuven",
        {"subject": demo.ANNA, "category": "civil-status", "purpose": "benefit-eligibility"},
        {"status": 403, "zone": "white", "problem": "no-consent"},
    ),
    Case(
        "emergency: the municipality breaks the glass",
        "municipality-leuven",
        {"subject": demo.ANNA, "category": "civil-status", "purpose": "benefit-eligibility", "emergency": FIRE},
        {"status": 200, "zone": "white", "problem": None},
        then="emergency-review",
    ),
    Case(
        "emergency: refused where the rule does not allow it",
        "family-benefits",
        {"subject": demo.ANNA, "category": "civil-status", "purpose": "benefit-eligibility", "emergency": FIRE},
        {"status": 403, "zone": "white", "problem": "emergency-not-allowed"},
    ),
    Case(
        "relationship: municipality has no relationship",
        "municipality-leuven",
        {"subject": demo.JAN, "category": "civil-status", "purpose": "benefit-eligibility"},
        {"status": 403, "zone": None, "problem": "no-relationship"},
    ),
    Case(
        "relationship: the employment office does not know Sofie yet",
        "employment-office",
        {"subject": demo.SOFIE, "category": "civil-status", "purpose": "job-placement"},
        {"status": 403, "zone": None, "problem": "no-relationship"},
        then="new-client",
    ),
    Case(
        "holder: nobody holds a pension record",
        "family-benefits",
        {"subject": demo.PIETER, "category": "pension", "purpose": "benefit-eligibility"},
        {"status": 404, "zone": None, "problem": "no-holder"},
    ),
]


@dataclass
class DemoWorld:
    state_dir: Path
    hub: Hub
    hub_url: str
    keys: dict[str, SigningKey]
    adapter_urls: dict[str, str]
    adapters: dict[str, Adapter]
    console_passwords: dict[str, str]  # operator → password, for the console at /console/
    sealing_keys: dict[str, X25519PrivateKey] = field(default_factory=dict)  # agency → its key for sealed answers

    def client(self, principal: str, session: aiohttp.ClientSession) -> HubClient:
        sealing = {sealing_key_id(principal): self.sealing_keys[principal]} if principal in self.sealing_keys else {}
        return HubClient(
            self.hub_url, self.keys[principal], HUB_KEY_ID, self.hub.key.public_key, session, sealing_keys=sealing
        )

    def description(self) -> dict[str, Any]:
        """world.json: enough for a client written from PROTOCOL.md alone to replay the scenario."""

        def key_entry(principal: str) -> dict[str, str]:
            return {"key_id": self.keys[principal].key_id, "private_key_path": f"keys/{principal}.pem"}

        return {
            "hub": {
                "url": self.hub_url,
                "key_id": HUB_KEY_ID,
                "public_key_pem": public_key_pem(self.hub.key.public_key),
            },
            "agencies": [
                {
                    "id": agency,
                    "adapter_url": url,
                    **key_entry(agency),
                    "sealing_key_id": sealing_key_id(agency),
                    "sealing_key_path": f"keys/{agency}.seal.pem",
                }
                for agency, url in self.adapter_urls.items()
            ],
            "operators": [
                {
                    "id": operator,
                    "role": role,
                    **key_entry(operator),
                    **({"console_password": self.console_passwords[operator]} if role in CONSOLE_ROLES else {}),
                }
                for operator, role in OPERATORS.items()
            ],
            "scenario": [
                {
                    "name": case.name,
                    "requester": case.requester,
                    "request": case.request,
                    "expect": {**case.expect, "problem": _problem_type(case.expect["problem"])},
                }
                for case in SCENARIO
            ],
        }


def sealing_key_id(agency: str) -> str:
    return f"{agency}-seal-2026"


def _problem_type(name: str | None) -> str | None:
    return None if name is None else f"https://crossroads.example/problems/{name}"


def _outgoing_ports_start() -> int:
    """The first port of the system's range for outgoing connections (Linux; 32768 where it cannot be read)."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32_768


OUTGOING_PORTS_START = _outgoing_ports_start()  # read once, at import, off any event loop
LISTENING_PORTS = range(10_000, max(10_001, OUTGOING_PORTS_START))
_turn = itertools.count(secrets.randbelow(len(LISTENING_PORTS)))  # this process's walk through them


def free_port() -> int:
    """A port of 127.0.0.1 that nothing is bound to, chosen below the range the system gives outgoing connections
    their ports from: a port the system picks itself (port 0) comes from that range, and an outgoing connection
    (to PostgreSQL, to an adapter) may take it before the server binds it. A process walks the range from a random
    start, so it never hands out a port twice (before it binds the first, a probe would find it free again)."""
    for _ in range(200):
        port = LISTENING_PORTS[next(_turn) % len(LISTENING_PORTS)]
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise OSError("no free port below the system's range of outgoing ports")


async def _serve(runner: web.AppRunner, port: int) -> web.AppRunner:
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner


@asynccontextmanager
async def demo_world(state_dir: Path, database_url: str = "", **settings: Any) -> AsyncIterator[DemoWorld]:
    """Generate keys, migrate the store, start the adapters and the hub, and seed the world.

    `database_url` picks the store (SQLite in `state_dir` by default); `settings` override Config fields.
    """
    hub_port = free_port()
    config = Config(state_dir=state_dir, port=hub_port, hub_key_id=HUB_KEY_ID, database_url=database_url, **settings)
    keys, hub_key = await asyncio.to_thread(_key_files, state_dir / "keys", config.key_path)
    sealing = await asyncio.to_thread(_sealing_key_files, state_dir / "keys")
    engine = create_engine(config.database)
    await upgrade(engine)
    await engine.dispose()
    async with AsyncExitStack() as stack:
        systems = await stack.enter_async_context(demo.legacy_systems(state_dir / "systems"))
        adapter_urls: dict[str, str] = {}
        adapters: dict[str, Adapter] = {}
        for agency in demo.AGENCIES:
            port = free_port()
            adapter_urls[agency] = f"http://127.0.0.1:{port}"
            adapters[agency] = demo.build_adapter(
                agency,
                Adapter(agency, keys[agency], HUB_KEY_ID, hub_key.public_key, adapter_urls[agency]),
                systems,
            )
            stack.push_async_callback(
                (await _serve(web.AppRunner(adapters[agency].app(), access_log=None), port)).cleanup
            )
        hub = await stack.enter_async_context(open_hub(config))
        await load_world(hub, _seed(keys, sealing, adapter_urls), actor="demo", reason="demo world")
        passwords = await _console_passwords(hub)
        runner = HubRunner(build_app(config, hub), access_log=None, **server_settings(config))
        stack.push_async_callback((await _serve(runner, hub_port)).cleanup)
        yield DemoWorld(state_dir, hub, config.url, keys, adapter_urls, adapters, passwords, sealing)


async def _console_passwords(hub: Hub) -> dict[str, str]:
    """A console password for each demo operator who may use the console."""
    at, passwords = datetime.now(UTC), {}
    for operator, role in OPERATORS.items():
        if role in CONSOLE_ROLES:
            password, hashed = await asyncio.to_thread(_demo_credentials, operator)
            await hub.console.set_password(operator, hashed, at)
            passwords[operator] = password
    return passwords


@cache
def _demo_credentials(operator: str) -> tuple[str, str]:
    """A random password and its Argon2id hash, made once per process: hashing takes a good part of a second
    on purpose, and a process (the test suite) may start many demo worlds."""
    password = secrets.token_urlsafe(12)
    return password, hash_password(password)


def _key_files(keys_dir: Path, hub_key_path: Path) -> tuple[dict[str, SigningKey], SigningKey]:
    """Every principal's key (in `keys_dir`) and the hub's (where every command looks for it), created on first
    use. A demo before issue 19 kept the hub's key in `keys_dir` too: it is moved, so the world keeps its key."""
    keys_dir.mkdir(parents=True, exist_ok=True)
    keys = {name: load_or_create(keys_dir / f"{name}.pem", f"{name}-2026") for name in [*demo.AGENCIES, *OPERATORS]}
    if (keys_dir / "hub.pem").exists() and not hub_key_path.exists():
        (keys_dir / "hub.pem").rename(hub_key_path)
    return keys, load_or_create(hub_key_path, HUB_KEY_ID)


def _sealing_key_files(keys_dir: Path) -> dict[str, X25519PrivateKey]:
    """Every agency's X25519 key that sealed answers are encrypted to, created on first use."""
    return {agency: load_or_create_sealing_key(keys_dir / f"{agency}.seal.pem") for agency in demo.AGENCIES}


def _seed(
    keys: dict[str, SigningKey], sealing: dict[str, X25519PrivateKey], adapter_urls: dict[str, str]
) -> dict[str, Any]:
    def key_list(name: str) -> list[dict[str, str]]:
        key = {"key_id": keys[name].key_id, "public_key_pem": public_key_pem(keys[name].public_key)}
        if name not in sealing:
            return [key]
        return [
            key,
            {"key_id": sealing_key_id(name), "public_key_pem": sealing_public_pem(sealing[name]), "use": "seal"},
        ]

    return {
        "categories": [{"name": name, "description": text} for name, text in demo.CATEGORIES.items()],
        "purposes": [
            {"name": name, "description": text, "confidential": name in EMBARGOES, "embargo_days": EMBARGOES.get(name)}
            for name, text in demo.PURPOSES.items()
        ],
        "agencies": [
            {
                "id": agency,
                "name": spec["name"],
                "adapter_url": adapter_urls[agency],
                "roles": spec["roles"],
                "keys": key_list(agency),
            }
            for agency, spec in demo.AGENCIES.items()
        ],
        "operators": [
            {"id": name, "name": name.replace("-", " ").title(), "role": role, "keys": key_list(name)}
            for name, role in OPERATORS.items()
        ],
        "holdings": demo.holdings(),
        "relationships": [
            {"agency": agency, "capacity": capacity, "subjects": subjects}
            for agency, capacity, subjects in demo.RELATIONSHIPS
        ],
        "rules": [rule.as_json() for rule in parse_csv(RULES.read_text()).rules],
        "consents": [
            {
                "subject": demo.SOFIE,
                "grantee": "family-benefits",
                "categories": ["income"],
                "purposes": ["benefit-eligibility"],
                "evidence": "paper form 2026/0412, Ghent office",
                "channel": "paper",
            },
            {
                "subject": demo.JAN,
                "grantee": "family-benefits",
                "categories": ["income"],
                "purposes": ["benefit-eligibility"],
                "evidence": "portal session 2026-03-02/118",
                "channel": "portal",
                "notice_version": "2026-1",
            },
        ],
        "refusals": [{"subject": demo.JAN, "agency": "family-benefits", "channel": "counter"}],
    }


async def run_scenario(world: DemoWorld) -> list[str]:
    """Broker every case; approve the grey review, give and withdraw Anna's consent and show the emergency
    review in between; summarise the audit."""
    async with aiohttp.ClientSession() as session:
        lines = await _seeded(world, session)
        for case in SCENARIO:
            line, answer = await _run_case(world, session, case)
            lines.append(line)
            if answer.get("status") == "pending":
                lines += await _approve_and_repeat(world, session, case, answer["review"])
            if case.then == "consent-lifecycle":
                lines += await _consent_lifecycle(world, session, case)
            if case.then == "emergency-review":
                lines += await _emergency_review(world, session, answer["emergency"]["review"])
            if case.then == "new-client":
                lines += await _new_client(world, session, case)
        lines += await _change_notification(world, session)
        lines += await _batch(world, session)
        lines += await _sealed(world, session)
        _, audit = await world.client("privacy-office", session).call("GET", "/v1/audit")
    return lines + _audit_summary(audit["records"])


async def _batch(world: DemoWorld, session: aiohttp.ClientSession) -> list[str]:
    """Family benefits re-checks its clients' civil status and income in one batch, one signed call: each line is
    decided as the same request alone would be, and has its own audit record."""
    asked = [
        {"ref": f"{subject}/{category}", "subject": subject, "category": category, "purpose": "benefit-eligibility"}
        for subject in (demo.ANNA, demo.JAN, demo.SOFIE)
        for category in ("civil-status", "income")
    ]
    path, results = world.state_dir / "monthly-check.ndjson", world.state_dir / "monthly-check.results.ndjson"
    await asyncio.to_thread(path.write_text, "".join(json.dumps(line) + "\n" for line in asked))
    await asyncio.to_thread(results.unlink, missing_ok=True)
    last = await world.client("family-benefits", session).batch(path, results, poll_s=0.05)
    answers = [json.loads(line) for line in (await asyncio.to_thread(results.read_text)).splitlines()]
    outcomes = ", ".join(f"{count} {outcome}" for outcome, count in sorted(last["by_outcome"].items()))
    lines = [f"batch: family-benefits re-checks {last['lines']} facts about its clients in one call: {outcomes}"]
    for answer in answers:
        said = answer["problem"]["type"].rsplit("/", 1)[-1] if "problem" in answer else answer.get("zone", "")
        lines.append(f"  {answer['ref']}: {answer['status']} {said}")
    return lines


async def _sealed(world: DemoWorld, session: aiohttp.ClientSession) -> list[str]:
    """The administrator seals income: the tax authority now encrypts Sofie's income, kept to the rule's fields, to
    family benefits' key; the hub checks and relays what it cannot read, and keeps only its digest."""
    reason = {"sealed": True, "reason": "income is read by its requester alone"}
    _, sealed = await world.client("admin-desk", session).call("PATCH", "/v1/categories/income", reason)
    result = await world.client("family-benefits", session).exchange(demo.SOFIE, "income", "benefit-eligibility")
    assert result.sealed is not None  # noqa: S101 -- a sealed category's answer; for the type checker
    query = f"/v1/audit?subject={demo.SOFIE}&category=income&outcome=delivered"
    _, audit = await world.client("privacy-office", session).call("GET", query)
    record = next(record for record in audit["records"] if record["exchange"] == result.exchange)
    ciphertext = len(unb64url(json.loads(unb64url(result.sealed["payload"]))["sealed"]["ct"]))
    return [
        f"{'sealed':<14} admin-desk seals income (version {sealed['version']}): holders encrypt it to the requester",
        f"{'':<14} family-benefits asks {demo.SOFIE}'s income: the hub relays {ciphertext} bytes it cannot open, "
        f"signed by {result.holder}; its record keeps {record['sealed_digest'][:19]}…",
        f"{'':<14} family-benefits opens it with its own key: {json.dumps(result.data)}",
    ]


async def _change_notification(world: DemoWorld, session: aiohttp.ClientSession) -> list[str]:
    """Anna moves: the population register tells the hub, which tells the agencies that know her and may hear."""
    inbox: dict[str, list[Notification]] = {agency: [] for agency in world.adapters}
    for agency, adapter in world.adapters.items():
        adapter.notifications(partial(_receive, inbox[agency]))
    change = {"subject": demo.ANNA, "category": "civil-status", "event": "updated", "ref": "move-2026-1187"}
    _, accepted = await world.client("population-register", session).call("POST", "/v1/notifications", change)
    for _ in range(100):  # the outbox delivers within moments; wait at most ten seconds
        if sum(len(notices) for notices in inbox.values()) >= accepted["recipients"]:
            break
        await asyncio.sleep(0.1)
    told = sorted(agency for agency, notices in inbox.items() if notices)
    untold = sorted(agency for agency, notices in inbox.items() if not notices and agency != "population-register")
    return [
        f"{'notification':<14} population-register: {demo.ANNA}'s civil status changed → "
        f"{accepted['recipients']} recipients; delivered to {', '.join(told)}",
        f"{'':<14} not told: {', '.join(untold)} (no relationship, or no rule to hear about civil status)",
    ]


async def _receive(inbox: list[Notification], notice: Notification) -> None:
    inbox.append(notice)


async def _seeded(world: DemoWorld, session: aiohttp.ClientSession) -> list[str]:
    """The consents and refusals the world starts with, as the citizen portal reads them back."""
    lines = []
    for subject in (demo.SOFIE, demo.JAN):
        _, history = await world.client("citizen-portal", session).call("GET", f"/v1/subjects/{subject}/consents")
        for consent in history["consents"]:
            lines.append(
                f"{'consent':<14} {subject} lets {consent['grantee']} have {', '.join(consent['categories'])} for "
                f"{', '.join(consent['purposes'])} ({consent['status']}, {consent['channel']}: {consent['evidence']})"
            )
        for refusal in history["refusals"]:
            scope = "everything" if refusal["categories"] is None else ", ".join(refusal["categories"])
            lines.append(
                f"{'refusal':<14} {subject} refuses {refusal['agency']} {scope} "
                f"({refusal['status']}, {refusal['channel']})"
            )
    return lines


async def _approve_and_repeat(world: DemoWorld, session: aiohttp.ClientSession, case: Case, review: str) -> list[str]:
    reason = "job-seeker allowance file open for this person"
    await world.client("privacy-office", session).call(
        "POST", f"/v1/reviews/{review}/decision", {"decision": "approve", "reason": reason}
    )
    repeat = Case(
        "grey: the same, once approved",
        case.requester,
        {**case.request, "review": review},
        {"status": 200, "zone": "grey", "problem": None},
    )
    line, _ = await _run_case(world, session, repeat)
    return [f"{'review':<14} privacy-office approves review {review[:8]}: {reason}", line]


async def _consent_lifecycle(world: DemoWorld, session: aiohttp.ClientSession, case: Case) -> list[str]:
    """The person consents through the portal, the same exchange is delivered, the person withdraws with one
    call, and the very next exchange is refused again."""
    portal = world.client("citizen-portal", session)
    consent = {
        "subject": case.request["subject"],
        "grantee": case.requester,
        "categories": [case.request["category"]],
        "purposes": [case.request["purpose"]],
        "evidence": "signed online through the citizen portal",
        "notice_version": "2026-1",
    }
    _, given = await portal.call("POST", "/v1/consents", consent)
    delivered, _ = await _run_case(
        world, session, Case("consent: after consent", case.requester, case.request, {"status": 200, "zone": "white"})
    )
    _, withdrawn = await portal.call("POST", f"/v1/consents/{given['consent']}/withdraw")
    refused, _ = await _run_case(
        world,
        session,
        Case("consent: after withdrawal", case.requester, case.request, {"status": 403, "zone": "white"}),
    )
    return [
        f"{'consent given':<14} citizen-portal records consent {given['consent'][:8]} for "
        f"{case.request['subject']} → {case.requester}: {case.request['category']}, {case.request['purpose']}",
        delivered,
        f"{'withdrawn':<14} citizen-portal withdraws consent {given['consent'][:8]} "
        f"(one call, channel {withdrawn['withdrawn_channel']}): status {withdrawn['status']}",
        refused,
    ]


async def _new_client(world: DemoWorld, session: aiohttp.ClientSession, case: Case) -> list[str]:
    """The agency tells the directory the person is now its client, over the API; its very next question about
    them goes through."""
    agency, subject = case.requester, case.request["subject"]
    since = rfc3339(datetime.now(UTC).replace(microsecond=0))
    capacity = next(capacity for owner, capacity, _ in demo.RELATIONSHIPS if owner == agency)  # as for its others
    client = {"subject": subject, "capacity": capacity, "from": since}
    status, declared = await world.client(agency, session).call("PUT", "/v1/directory/relationships", client)
    delivered, _ = await _run_case(
        world, session, Case("relationship: once declared", agency, case.request, {"status": 200, "zone": "white"})
    )
    return [
        f"{'directory':<14} {agency} declares {subject} its client ({declared['capacity']}, from {declared['from']}) "
        f"→ {status}",
        delivered,
    ]


async def _emergency_review(world: DemoWorld, session: aiohttp.ClientSession, review_id: str) -> list[str]:
    """The review the emergency access opened, as the privacy officer finds it in the queue."""
    _, queue = await world.client("privacy-office", session).call("GET", "/v1/reviews?status=pending")
    [review] = [review for review in queue["reviews"] if review["review"] == review_id]
    return [
        f"{'review':<14} privacy-office finds {review['kind']} review {review_id[:8]} ({review['status']}) of "
        f"{review['requester']}'s access, rule {review['rule_id']}: {review['justification']}"
    ]


async def _run_case(world: DemoWorld, session: aiohttp.ClientSession, case: Case) -> tuple[str, dict[str, Any]]:
    """One exchange, sent as the case writes it, and its one-line outcome; the hub's answer (empty if refused)."""
    request = case.request
    asked = f"{case.requester} asks {request['category']} of {request['subject']} for {request['purpose']}"
    if "emergency" in request:
        asked += " in an emergency"
    answer: dict[str, Any] = {}
    try:
        status, answer = await world.client(case.requester, session).call("POST", "/v1/exchanges", request)
    except HubProblem as problem:
        outcome, zone = f"{problem.status} {problem.name}", case.expect.get("zone") or "-"
    else:
        zone = answer["zone"]
        if status == 202:
            outcome = f"202 pending review {answer['review'][:8]}"
        else:
            outcome = f"200 from {answer['holder']}, fields: {', '.join(answer['data'])}"
        if "emergency" in answer:
            outcome += f"; review {answer['emergency']['review'][:8]} opened"
    expected = case.expect["status"]
    mark = "" if outcome.startswith(str(expected)) else f"  (UNEXPECTED: wanted {expected})"
    return f"{zone:<14} {asked} → {outcome}{mark}", answer


def _audit_summary(records: list[dict[str, Any]]) -> list[str]:
    exchanges = [record for record in records if record["kind"] == "exchange"]
    outcomes = Counter(record["outcome"] for record in records)
    lines = [
        "",
        f"audit: {len(records)} records committed, {len(exchanges)} of them exchanges; by outcome: "
        + ", ".join(f"{outcome} {count}" for outcome, count in sorted(outcomes.items())),
    ]
    for record in exchanges:
        lines.append(
            f"  #{record['seq']:<3} {record['requester']:<20} {record['category'] or '-':<18} "
            f"{record['outcome']:<9} {record['reason'] or record['zone'] or '-':<21} "
            f"rule {record['rule_id'] or '-':<13} v{record['policy_version'] or '-'} "
            f"consent {(record['consent_id'] or '-')[:8]:<8} review {(record['review_id'] or '-')[:8]:<8} "
            f"{'EMERGENCY ' if record['emergency'] else ''}"
            f"{record['response_digest'][:19]}"
        )
    return lines


async def run_demo(state_dir: Path) -> None:
    async with demo_world(state_dir) as world:
        print(
            f"Crossroads demo: hub at {world.hub_url}, {len(world.adapter_urls)} agency adapters, "
            f"store {world.hub.config.database}"
        )
        for line in await run_scenario(world):
            print(line)


async def serve_demo(state_dir: Path) -> None:
    """Start the world, write world.json, print `ready`, and run until interrupted."""
    async with demo_world(state_dir) as world:
        (state_dir / "world.json").write_text(json.dumps(world.description(), indent=2))
        print("ready", flush=True)  # the first line: what a script starting the demo waits for
        print(f"console: {world.hub_url}/console/", flush=True)
        for operator, password in world.console_passwords.items():
            print(f"  {operator} ({OPERATORS[operator].replace('_', ' ')}): password {password}", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
