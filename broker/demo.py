"""The demo world: a hub and six agencies on localhost, seeded with keys, directory, rules and consents,
brokering a scenario that shows each outcome: white, black, grey, consent, relationship, holder, audit.
"""

from __future__ import annotations

import asyncio
import json
import signal
import socket
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from adapters.client import HubClient, HubProblem
from adapters.examples import demo_agencies as demo
from adapters.server import Adapter
from broker.app import build_app
from broker.config import Config
from broker.hub import Hub, open_hub
from broker.keys import load_or_create
from broker.signing import SigningKey, public_key_pem
from broker.storage import create_engine
from broker.storage.migrations import upgrade
from broker.world import load_world
from policies.rules import parse_csv

HUB_KEY_ID = "crossroads-hub"
OPERATORS = {"admin-desk": "admin", "privacy-office": "privacy_officer", "citizen-portal": "citizen_portal"}
RULES = Path(__file__).resolve().parent.parent / "policies" / "default_rules.csv"


@dataclass(frozen=True)
class Case:
    name: str
    requester: str
    request: dict[str, str]
    expect: dict[str, Any]


# Each case with the answer the hub gives it in the seeded world: Sofie has consented to her income
# being shared for benefit eligibility, Anna has not (until the demo gives it on her behalf).
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
    ),
    Case(
        "consent: income delivered under consent, minimised",
        "family-benefits",
        {"subject": demo.SOFIE, "category": "income", "purpose": "benefit-eligibility"},
        {"status": 200, "zone": "white", "problem": None},
    ),
    Case(
        "relationship: municipality has no relationship",
        "municipality-leuven",
        {"subject": demo.JAN, "category": "civil-status", "purpose": "benefit-eligibility"},
        {"status": 403, "zone": None, "problem": "no-relationship"},
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

    def client(self, principal: str, session: aiohttp.ClientSession) -> HubClient:
        return HubClient(self.hub_url, self.keys[principal], HUB_KEY_ID, self.hub.key.public_key, session)

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
                {"id": agency, "adapter_url": url, **key_entry(agency)} for agency, url in self.adapter_urls.items()
            ],
            "operators": [
                {"id": operator, "role": role, **key_entry(operator)} for operator, role in OPERATORS.items()
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


def _problem_type(name: str | None) -> str | None:
    return None if name is None else f"https://crossroads.example/problems/{name}"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def _serve(app: web.Application, port: int) -> web.AppRunner:
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner


@asynccontextmanager
async def demo_world(state_dir: Path, database_url: str = "", **settings: Any) -> AsyncIterator[DemoWorld]:
    """Generate keys, migrate the store, start the adapters and the hub, and seed the world.

    `database_url` picks the store (SQLite in `state_dir` by default); `settings` override Config fields.
    """
    keys_dir = state_dir / "keys"
    keys, hub_key = await asyncio.to_thread(_key_files, keys_dir)
    hub_port = free_port()
    config = Config(
        state_dir=state_dir,
        port=hub_port,
        hub_key_path=keys_dir / "hub.pem",
        hub_key_id=HUB_KEY_ID,
        database_url=database_url,
        **settings,
    )
    engine = create_engine(config.database)
    await upgrade(engine)
    await engine.dispose()
    async with AsyncExitStack() as stack:
        adapter_urls: dict[str, str] = {}
        adapters: dict[str, Adapter] = {}
        for agency in demo.AGENCIES:
            port = free_port()
            adapter_urls[agency] = f"http://127.0.0.1:{port}"
            adapters[agency] = demo.build_adapter(
                agency, Adapter(agency, keys[agency], HUB_KEY_ID, hub_key.public_key, adapter_urls[agency])
            )
            stack.push_async_callback((await _serve(adapters[agency].app(), port)).cleanup)
        hub = await stack.enter_async_context(open_hub(config))
        await load_world(hub, _seed(keys, adapter_urls), actor="demo", reason="demo world")
        stack.push_async_callback((await _serve(build_app(config, hub), hub_port)).cleanup)
        yield DemoWorld(state_dir, hub, config.url, keys, adapter_urls, adapters)


def _key_files(keys_dir: Path) -> tuple[dict[str, SigningKey], SigningKey]:
    """Every principal's key and the hub's, created on first use."""
    keys_dir.mkdir(parents=True, exist_ok=True)
    keys = {name: load_or_create(keys_dir / f"{name}.pem", f"{name}-2026") for name in [*demo.AGENCIES, *OPERATORS]}
    return keys, load_or_create(keys_dir / "hub.pem", HUB_KEY_ID)


def _seed(keys: dict[str, SigningKey], adapter_urls: dict[str, str]) -> dict[str, Any]:
    def key_list(name: str) -> list[dict[str, str]]:
        return [{"key_id": keys[name].key_id, "public_key_pem": public_key_pem(keys[name].public_key)}]

    return {
        "categories": [{"name": name, "description": text} for name, text in demo.CATEGORIES.items()],
        "purposes": [{"name": name, "description": text} for name, text in demo.PURPOSES.items()],
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
            }
        ],
    }


async def run_scenario(world: DemoWorld) -> list[str]:
    """Broker every case; give Anna's consent and approve the grey review in between; summarise the audit."""
    lines = []
    async with aiohttp.ClientSession() as session:
        for case in SCENARIO:
            line, review = await _run_case(world, session, case)
            lines.append(line)
            if review is not None:
                lines += await _approve_and_repeat(world, session, case, review)
            if case.expect["problem"] == "no-consent":
                lines += await _consent_and_repeat(world, session, case)
        _, audit = await world.client("privacy-office", session).call("GET", "/v1/audit")
    return lines + _audit_summary(audit["records"])


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


async def _consent_and_repeat(world: DemoWorld, session: aiohttp.ClientSession, case: Case) -> list[str]:
    consent = {
        "subject": case.request["subject"],
        "grantee": case.requester,
        "categories": ["income"],
        "purposes": ["benefit-eligibility"],
        "evidence": "signed online through the citizen portal",
    }
    _, given = await world.client("citizen-portal", session).call("POST", "/v1/consents", consent)
    repeat = Case(
        "consent: the same, after consent",
        case.requester,
        case.request,
        {"status": 200, "zone": "white", "problem": None},
    )
    line, _ = await _run_case(world, session, repeat)
    return [
        f"{'consent given':<14} citizen-portal records consent {given['consent'][:8]} for "
        f"{case.request['subject']} → {case.requester}: income, benefit-eligibility",
        line,
    ]


async def _run_case(world: DemoWorld, session: aiohttp.ClientSession, case: Case) -> tuple[str, str | None]:
    """One exchange and its one-line outcome; the review id when it is left pending."""
    request = case.request
    asked = f"{case.requester} asks {request['category']} of {request['subject']} for {request['purpose']}"
    review = None
    try:
        result = await world.client(case.requester, session).exchange(
            request["subject"], request["category"], request["purpose"], review=request.get("review")
        )
    except HubProblem as problem:
        outcome, zone = f"{problem.status} {problem.name}", case.expect["zone"] or "-"
    else:
        zone = result.zone
        if result.status == 202:
            review = result.review
            outcome = f"202 pending review {(review or '')[:8]}"
        else:
            outcome = f"200 from {result.holder}, fields: {', '.join(result.data or {})}"
    expected = case.expect["status"]
    mark = "" if outcome.startswith(str(expected)) else f"  (UNEXPECTED: wanted {expected})"
    return f"{zone:<14} {asked} → {outcome}{mark}", review


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
            f"{record['outcome']:<9} {record['reason'] or record['zone'] or '-':<16} "
            f"rule {record['rule_id'] or '-':<5} v{record['policy_version'] or '-'} "
            f"consent {(record['consent_id'] or '-')[:8]:<8} review {(record['review_id'] or '-')[:8]:<8} "
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
        print("ready", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
