"""`crossroads operator password`: an operator's console password from standard input, hashed with Argon2id,
audited, closing the operator's sessions; refused for a short password, an unknown operator or a tool.
`crossroads operator unlock`: an operator id's sign-in locks lifted, audited.
The demo world seeds passwords and tells them in world.json."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from broker.accounts.credentials import check_password
from broker.accounts.store import Session
from broker.cli.demo import DemoWorld
from broker.cli.main import main
from broker.config import Config
from broker.hub import open_hub


@pytest.fixture
def state(tmp_path: Path) -> list[str]:
    runner = CliRunner()
    runner.invoke(main, ["keygen", str(tmp_path / "hub.pem")])
    public = runner.invoke(main, ["keygen", str(tmp_path / "officer.pem")]).output
    options = ["--state-dir", str(tmp_path)]
    assert runner.invoke(main, ["db", "upgrade", *options]).exit_code == 0
    key = [{"key_id": "officer-1", "public_key_pem": public}]
    world = {
        "operators": [
            {"id": "privacy-office", "name": "Privacy Office", "role": "privacy_officer", "keys": key},
            {"id": "citizen-portal", "name": "Citizen Portal", "role": "citizen_portal"},
        ]
    }
    (tmp_path / "world.yaml").write_text(yaml.safe_dump(world))
    assert runner.invoke(main, ["world", "load", str(tmp_path / "world.yaml"), *options]).exit_code == 0
    return options


def password(options: list[str], operator: str, typed: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["operator", "password", operator, *options], input=typed + "\n")
    return result.exit_code, result.stdout if result.exit_code == 0 else result.output


def test_setting_a_console_password(state: list[str], tmp_path: Path) -> None:
    async def open_session() -> None:
        async with open_hub(Config(state_dir=tmp_path)) as hub:
            at = datetime.now(UTC)
            await hub.console.open_session(Session("a" * 64, "privacy-office", "t", at, at), "127.0.0.1", at, at)

    asyncio.run(open_session())
    code, output = password(state, "privacy-office", "a long enough passphrase")
    assert code == 0 and "console password set for privacy-office" in output

    async def read() -> tuple[str | None, Session | None, list[str | None]]:
        async with open_hub(Config(state_dir=tmp_path)) as hub:
            records = await hub.audit.records(kind="console")
            return (
                await hub.console.password_hash("privacy-office"),
                await hub.console.session("a" * 64),
                [record.reason for record in records if record.requester == "privacy-office"],
            )

    stored, session, reasons = asyncio.run(read())
    assert stored is not None and check_password(stored, "a long enough passphrase").ok
    assert "a long enough passphrase" not in stored
    assert session is None  # a new password closes the operator's console sessions
    assert reasons == ["password-set"]


def test_what_is_refused(state: list[str]) -> None:
    code, output = password(state, "privacy-office", "short")
    assert code != 0 and "at least 12 characters" in output
    code, output = password(state, "nobody", "a long enough passphrase")
    assert code != 0 and "no operator 'nobody'" in output
    code, output = password(state, "citizen-portal", "a long enough passphrase")
    assert code != 0 and "citizen_portal" in output


def test_lifting_sign_in_locks(state: list[str], tmp_path: Path) -> None:
    """`crossroads operator unlock` forgets an operator id's failed sign-ins from one address or from all, and
    records who did it (the person at the keyboard) and whose lock it lifted (the record's holder)."""

    async def fail_from(*peers: str) -> None:
        async with open_hub(Config(state_dir=tmp_path)) as hub:
            at = datetime.now(UTC)
            for peer in peers:
                await hub.console.fail("privacy-office", peer, at, at - timedelta(days=1))

    asyncio.run(fail_from("192.0.2.7", "192.0.2.7", "2001:db8::/64"))
    runner = CliRunner()
    one = runner.invoke(main, ["operator", "unlock", "privacy-office", "--address", "192.0.2.7", *state])
    assert one.exit_code == 0 and "2 failed sign-ins of privacy-office from 192.0.2.7 forgotten" in one.stdout
    every = runner.invoke(main, ["operator", "unlock", "privacy-office", *state])
    assert every.exit_code == 0 and "1 failed sign-in of privacy-office from every address forgotten" in every.stdout

    async def read() -> tuple[dict[tuple[str, str], list[datetime]], list[tuple[str | None, str | None]]]:
        async with open_hub(Config(state_dir=tmp_path)) as hub:
            records = await hub.audit.records(kind="console", reason="sign-in-unlock")
            return await hub.console.failing(datetime.now(UTC) - timedelta(days=1)), [
                (record.requester, record.holder) for record in records
            ]

    failing, records = asyncio.run(read())
    assert failing == {}
    assert [holder for _, holder in records] == ["privacy-office", "privacy-office"]
    assert all(requester is not None and requester.startswith("cli:") for requester, _ in records)


async def test_the_demo_tells_its_console_passwords(sqlite_world: DemoWorld) -> None:
    operators = {operator["id"]: operator for operator in sqlite_world.description()["operators"]}
    assert operators["admin-desk"]["console_password"] == sqlite_world.console_passwords["admin-desk"]
    assert "console_password" in operators["privacy-office"] and "console_password" not in operators["citizen-portal"]
    stored = await sqlite_world.hub.console.password_hash("admin-desk")
    assert stored is not None and await asyncio.to_thread(
        lambda: check_password(stored, sqlite_world.console_passwords["admin-desk"]).ok
    )
