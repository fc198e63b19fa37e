"""Keys: an agency's rotation (both keys verify until the old one expires), revocation counting on every hub
process from the next request on, replay refused across processes, the hub's own key rotation with old audit
checkpoints still verifiable by `crossroads audit verify`, and private key files created 0600, never logged.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import stat
import sys
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

import aiohttp
import pytest
import structlog
from aiohttp import web
from click.testing import CliRunner

from adapters.client import HubClient, HubProblem
from adapters.examples.demo_agencies import ANNA
from broker.audit.log import AuditEntry
from broker.base import logs
from broker.base.keyfiles import load_or_create, write_private_key
from broker.base.signing import SigningKey, generate_key, public_key_pem
from broker.base.store import create_engine
from broker.cli.demo import HUB_KEY_ID, DemoWorld, demo_world, free_port
from broker.cli.main import main
from broker.config import Config
from broker.hub import open_hub
from broker.schema.migrations import upgrade
from broker.server import build_app, server_settings
from directory.registry import AgencyChange
from tests import postgres
from tests.hostile.forge import Signing, send, sign

WHITE = {"subject": ANNA, "category": "civil-status", "purpose": "benefit-eligibility"}


def client(world: DemoWorld, key: SigningKey, session: aiohttp.ClientSession, url: str | None = None) -> HubClient:
    return HubClient(url or world.hub_url, key, HUB_KEY_ID, world.hub.key.public_key, session)


async def register(
    world: DemoWorld, session: aiohttp.ClientSession, key: SigningKey, overlap_s: int | None = None
) -> dict[str, object]:
    document: dict[str, object] = {"key_id": key.key_id, "public_key_pem": public_key_pem(key.public_key)}
    if overlap_s is not None:
        document["overlap_s"] = overlap_s
    status, answer = await world.client("admin-desk", session).call(
        "POST", "/v1/agencies/family-benefits/keys", document
    )
    assert status == 201
    return answer


async def test_a_rotation_keeps_both_keys_valid_until_the_old_one_expires(
    sqlite_world: DemoWorld, session: aiohttp.ClientSession
) -> None:
    old = sqlite_world.keys["family-benefits"]
    second, third = SigningKey("family-benefits-2027", generate_key()), SigningKey("fb-2028", generate_key())
    await register(sqlite_world, session, second, overlap_s=3600)
    for key in (old, second):  # the overlap: both verify
        assert (await client(sqlite_world, key, session).exchange(**WHITE)).status == 200
    _, listed = await sqlite_world.client("admin-desk", session).call("GET", "/v1/agencies/family-benefits/keys")
    until = {key["key_id"]: key["valid_until"] for key in listed["keys"]}
    assert until[second.key_id] is None and until[old.key_id] is not None
    await register(sqlite_world, session, third, overlap_s=0)  # a rotation without overlap ends the others now
    for key in (old, second):
        with pytest.raises(HubProblem) as refused:
            await client(sqlite_world, key, session).exchange(**WHITE)
        assert refused.value.name == "unknown-key"
    assert (await client(sqlite_world, third, session).exchange(**WHITE)).status == 200
    changes = await sqlite_world.hub.audit.records(kind="key")
    assert [(record.requester, record.holder, record.status) for record in changes] == [
        ("admin-desk", "family-benefits", 201),
        ("admin-desk", "family-benefits", 200),
        ("admin-desk", "family-benefits", 201),
    ]


@pytest.fixture
async def two_hubs(postgres_server: postgres.Server, tmp_path: Path) -> AsyncIterator[tuple[DemoWorld, int]]:
    """The demo world on PostgreSQL and a second hub process on the same store, behind the same public URL
    (as behind a load balancer); both keep directory reads cached for an hour, so only the directory version
    can tell them of a revocation."""
    url = await postgres_server.new_database()
    async with demo_world(tmp_path / "state", url, cache_ttl_s=3600.0) as world:
        second = replace(world.hub.config, port=free_port(), public_url=world.hub_url)
        async with open_hub(second) as hub:
            app = await asyncio.to_thread(build_app, second, hub)  # building it reads template files
            runner = web.AppRunner(app, access_log=None, **server_settings(second))
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", second.port).start()
            try:
                yield world, second.port
            finally:
                await runner.cleanup()


async def ask(
    world: DemoWorld, port: int, key: SigningKey, body: bytes
) -> tuple[int, str | None, list[tuple[str, str]]]:
    """An exchange signed for the hubs' public URL, sent to the hub listening on `port`."""
    headers = sign("POST", world.hub_url + "/v1/exchanges", body, key.key_id, key.private_key, Signing())
    answer = await send(port, "POST", "/v1/exchanges", headers, body)
    return answer.status, answer.problem, headers


@pytest.mark.postgres
async def test_a_revocation_counts_on_every_hub_process_from_the_next_request(
    two_hubs: tuple[DemoWorld, int], session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    world, other = two_hubs
    body = json.dumps(WHITE).encode()
    family, tax = world.keys["family-benefits"], world.keys["tax-authority"]
    for port in (world.hub.config.port, other):  # both processes have the keys in their caches now
        assert (await ask(world, port, family, body))[:2] == (200, None)
        assert (await ask(world, port, tax, body))[0] == 403
    await world.client("admin-desk", session).call(
        "POST", f"/v1/agencies/family-benefits/keys/{family.key_id}/revoke", {"reason": "laptop stolen"}
    )
    assert (await ask(world, other, family, body))[:2] == (401, "unknown-key")
    assert (await ask(world, world.hub.config.port, family, body))[:2] == (401, "unknown-key")
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        *("-m", "broker", "keys", "revoke", "tax-authority", tax.key_id, "--reason", "key leaked"),
        *("--state-dir", str(world.state_dir), "--database-url", world.hub.config.database),
        *("--hub-key", str(world.hub.config.key_path)),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await process.communicate()
    assert process.returncode == 0, output.decode()
    assert b"PRIVATE KEY" not in output
    for port in (other, world.hub.config.port):
        assert (await ask(world, port, tax, body))[:2] == (401, "unknown-key")


@pytest.mark.postgres
async def test_a_suspension_and_a_policy_edit_count_on_every_hub_process_from_the_next_exchange(
    two_hubs: tuple[DemoWorld, int], session: aiohttp.ClientSession
) -> None:
    """The exchange path reads the directory's and the rules' versions with its one read: the other process, which
    has the key, the agency and the rules in memory, checks them again as soon as another process wrote them."""
    world, other = two_hubs
    body = json.dumps(WHITE).encode()
    family = world.keys["family-benefits"]
    assert (await ask(world, other, family, body))[:2] == (200, None)
    await world.hub.registry.update_agency("family-benefits", AgencyChange(status="suspended"))
    assert (await ask(world, other, family, body))[:2] == (403, "suspended")
    await world.hub.registry.update_agency("family-benefits", AgencyChange(status="active"))
    assert (await ask(world, other, family, body))[:2] == (200, None)
    [rule] = {record.rule_id for record in await world.hub.audit.records(kind="exchange") if record.status == 200}
    status, _ = await world.client("admin-desk", session).call("DELETE", f"/v1/policies/{rule}", {"reason": "annulled"})
    assert status == 200
    assert (await ask(world, other, family, body))[:2] == (403, "black-zone")


@pytest.mark.postgres
async def test_a_nonce_used_on_one_hub_process_is_a_replay_on_the_other(two_hubs: tuple[DemoWorld, int]) -> None:
    world, other = two_hubs
    body = json.dumps(WHITE).encode()
    status, _, headers = await ask(world, world.hub.config.port, world.keys["family-benefits"], body)
    assert status == 200
    again = await send(other, "POST", "/v1/exchanges", headers, body)
    assert (again.status, again.problem) == (409, "replay")
    [record] = [r for r in await world.hub.audit.records(reason="replay") if r.key_id == "family-benefits-2026"]
    assert record.requester == "family-benefits" and record.status == 409


async def _hub_writing_records(state: Path, key: Path, key_id: str, count: int) -> None:
    """A hub run with `key`, in which `count` attempts are recorded; it seals a checkpoint as it stops."""
    config = Config(state_dir=state, hub_key_path=key, hub_key_id=key_id)
    async with open_hub(config) as hub:
        for _ in range(count):
            await hub.audit.commit(
                AuditEntry(at=datetime.now(UTC), kind="http", outcome="refused", status=401, reason="unsigned")
            )


async def _crossroads(*args: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "broker", *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    output, _ = await process.communicate()
    return int(process.returncode or 0), output.decode()


async def test_the_hubs_own_key_rotates_and_old_checkpoints_still_verify(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    engine = create_engine(Config(state_dir=state).database)
    await upgrade(engine)
    await engine.dispose()
    old, new = state / "hub-2026.pem", state / "hub-2027.pem"
    old_public, new_public = tmp_path / "hub-2026.pub", tmp_path / "hub-2027.pub"
    for private, public in ((old, old_public), (new, new_public)):
        key = await asyncio.to_thread(write_private_key, private)
        await asyncio.to_thread(public.write_text, public_key_pem(key.public_key()))
    await _hub_writing_records(state, old, "crossroads-hub-2026", 3)
    await _hub_writing_records(state, new, "crossroads-hub-2027", 2)  # the same store, the rotated key
    store = ("--state-dir", str(state))
    code, output = await _crossroads("audit", "verify", *store, "--public-key", str(new_public), "--json")
    assert code == 0, output
    verdict = json.loads(output)
    assert verdict["ok"] and verdict["records"] == 5 and verdict["checkpoint"]["key_id"] == "crossroads-hub-2027"
    code, output = await _crossroads("audit", "verify", *store, "--public-key", str(old_public))
    assert code == 1 and "untrusted-checkpoint" in output  # the old key alone no longer vouches for the log
    export = tmp_path / "audit.jsonl"
    assert (await _crossroads("audit", "export", *store, str(export)))[0] == 0
    lines = [json.loads(line) for line in (await asyncio.to_thread(export.read_text)).splitlines()]
    signers = [line["key_id"] for line in lines if line.get("type") == "checkpoint"]
    assert "crossroads-hub-2026" in signers and signers[-1] == "crossroads-hub-2027"
    code, output = await _crossroads("audit", "verify", "--export", str(export), "--public-key", str(new_public))
    assert code == 0, output


def test_private_key_files_are_created_readable_by_their_owner_only(tmp_path: Path) -> None:
    previous = os.umask(0)  # the most permissive umask a service could run under
    try:
        result = CliRunner().invoke(main, ["keygen", str(tmp_path / "hub.pem")])
        load_or_create(tmp_path / "agency.pem", "agency-1")
        write_private_key(tmp_path / "keys" / "operator.pem")
    finally:
        os.umask(previous)
    assert result.exit_code == 0 and "PRIVATE KEY" not in result.output and "PUBLIC KEY" in result.output
    for path in (tmp_path / "hub.pem", tmp_path / "agency.pem", tmp_path / "keys" / "operator.pem"):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    again = CliRunner().invoke(main, ["keygen", str(tmp_path / "hub.pem")])
    assert again.exit_code != 0  # an existing key is never overwritten


async def test_private_keys_and_injected_lines_never_reach_the_log(
    sqlite_world: DemoWorld, session: aiohttp.ClientSession
) -> None:
    """Every log line is one JSON event: a private key pasted into a request, a line break in a value, are
    never written as such."""
    stream, previous = io.StringIO(), structlog.get_config()
    logs.configure(stream)
    try:
        admin = sqlite_world.client("admin-desk", session)
        pasted = (await asyncio.to_thread((sqlite_world.state_dir / "keys" / "tax-authority.pem").read_text)).strip()
        forged = '\n{"event": "exchange.answered", "status": 200, "requester": "forged"}'
        with pytest.raises(HubProblem):
            await admin.call("POST", "/v1/agencies/family-benefits/keys", {"key_id": "x", "public_key_pem": pasted})
        with pytest.raises(HubProblem):
            await sqlite_world.client("family-benefits", session).exchange(ANNA + forged, "civil-status", "x")
        with pytest.raises(HubProblem):
            await sqlite_world.client("privacy-office", session).call("GET", "/v1/audit?subject=" + quote(forged))
        await register(sqlite_world, session, SigningKey("family-benefits-logged", generate_key()))
    finally:
        structlog.configure(**previous)
    lines = stream.getvalue().splitlines()
    assert lines and all(isinstance(json.loads(line), dict) for line in lines)
    assert not any(json.loads(line).get("requester") == "forged" for line in lines)
    secret = "".join(pasted.splitlines()[1:-1])
    assert "PRIVATE KEY" not in stream.getvalue() and secret not in stream.getvalue()


async def test_the_keys_commands_rotate_list_and_refuse_audited(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    engine = create_engine(Config(state_dir=state).database)
    await upgrade(engine)
    await engine.dispose()
    await asyncio.to_thread(write_private_key, state / "hub.pem")
    old, new = SigningKey("fb-2026", generate_key()), SigningKey("fb-2027", generate_key())
    async with open_hub(Config(state_dir=state)) as hub:
        agency = {"id": "family-benefits", "name": "Family Benefits", "adapter_url": "http://127.0.0.1:9"}
        keys = [{"key_id": old.key_id, "public_key_pem": public_key_pem(old.public_key)}]
        await hub.directory.load({"agencies": [{**agency, "keys": keys}]}, datetime.now(UTC))
    public = tmp_path / "fb-2027.pub"
    await asyncio.to_thread(public.write_text, public_key_pem(new.public_key))
    store = ("--state-dir", str(state))
    rotate = ("keys", "rotate", "family-benefits", "fb-2027", str(public), "--overlap", "60")
    code, output = await _crossroads(*rotate, *store)
    assert code == 0 and "fb-2027  valid" in output, output
    code, output = await _crossroads("keys", "list", "family-benefits", *store)
    listed = [line for line in output.splitlines() if line.startswith("fb-")]
    assert code == 0 and [line.split()[:2] for line in listed] == [["fb-2026", "valid"], ["fb-2027", "valid"]]
    assert "open-ended" not in listed[0]  # the old key now ends with the overlap
    code, output = await _crossroads("keys", "register", "family-benefits", "fb-2027", str(public), *store)
    assert code == 1 and "already registered" in output
    async with open_hub(Config(state_dir=state)) as hub:
        records = await hub.audit.records(kind="key")
    assert [(record.status, record.reason, record.holder) for record in records] == [
        (201, None, "family-benefits"),
        (409, "conflict", "family-benefits"),
    ]
    assert all(str(record.requester).startswith("cli:") for record in records)
