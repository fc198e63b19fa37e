"""adapters/examples/curl-exchange.sh completes a signed exchange against a live hub with only curl,
openssl and shell tools, and refuses an answer it cannot verify with the hub's key.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from aiohttp import web

from adapters.examples.demo_agencies import ANNA, SOFIE
from adapters.examples.legacy_rest import serving
from broker.base.keyfiles import write_private_key
from broker.base.signing import generate_key, public_key_pem
from broker.cli.demo import DemoWorld

SCRIPT = Path(__file__).resolve().parents[2] / "adapters" / "examples" / "curl-exchange.sh"


def _missing_tools() -> str | None:
    for tool in ("bash", "curl", "openssl", "base64"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    with tempfile.TemporaryDirectory() as scratch:
        key, message = Path(scratch) / "key.pem", Path(scratch) / "message"
        message.write_text("probe")
        for command in (
            ["openssl", "genpkey", "-algorithm", "ed25519", "-out", str(key)],
            ["openssl", "pkeyutl", "-sign", "-rawin", "-inkey", str(key), "-in", str(message)],
        ):
            probe = subprocess.run(command, capture_output=True, check=False)
            if probe.returncode != 0:
                return f"this openssl cannot sign with Ed25519 ({' '.join(command[:2])}): {probe.stderr.decode()}"
    return None


MISSING = _missing_tools()
pytestmark = pytest.mark.skipif(MISSING is not None, reason=f"the shell example cannot run here: {MISSING}")


async def run(*arguments: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        str(SCRIPT),
        *arguments,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_the_shell_example_completes_a_signed_exchange(sqlite_world: DemoWorld) -> None:
    world_file = sqlite_world.state_dir / "world.json"
    await asyncio.to_thread(world_file.write_text, json.dumps(sqlite_world.description()))

    code, out, err = await run(str(world_file), "family-benefits", ANNA, "civil-status", "benefit-eligibility")
    assert (code, err.strip()) == (0, "HTTP 200, signature verified"), out
    answer = json.loads(out)
    assert (answer["zone"], answer["holder"], answer["data"]["name"]) == (
        "white",
        "population-register",
        "Anna Peeters",
    )
    [record] = await sqlite_world.hub.audit.records(exchange=answer["exchange"])
    assert (record.requester, record.status) == ("family-benefits", 200)

    code, out, err = await run(str(world_file), "family-benefits", ANNA, "health-record", "benefit-eligibility")
    assert (code, err.strip(), json.loads(out)["status"]) == (3, "HTTP 403, signature verified", 403)


async def test_the_shell_example_without_a_world_file(sqlite_world: DemoWorld, tmp_path: Path) -> None:
    hub_key = tmp_path / "hub.pub.pem"
    await asyncio.to_thread(hub_key.write_text, public_key_pem(sqlite_world.hub.key.public_key))
    settings = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HUB_URL": sqlite_world.hub_url,
        "HUB_KEY_ID": "crossroads-hub",
        "HUB_PUBLIC_KEY_FILE": str(hub_key),
        "KEY_ID": sqlite_world.keys["family-benefits"].key_id,
        "KEY_FILE": str(sqlite_world.state_dir / "keys" / "family-benefits.pem"),
    }
    code, out, err = await run(
        "-", "family-benefits", SOFIE, "income", "benefit-eligibility", env={**settings, "PARAMS": '{"year":2025}'}
    )
    assert (code, json.loads(out)["data"]) == (0, {"taxable_income": 35400, "year": 2025}), err

    code, out, err = await run(
        "-", "family-benefits", ANNA, "civil-status", "benefit-eligibility", env={**settings, "KEY_ID": "nobody-2026"}
    )
    assert (code, err.strip(), json.loads(out)["type"]) == (
        3,
        "HTTP 401, signature verified",
        "https://crossroads.example/problems/unknown-key",
    )

    impostor = tmp_path / "impostor.pub.pem"
    await asyncio.to_thread(impostor.write_text, public_key_pem(generate_key().public_key()))
    code, out, err = await run(
        "-",
        "family-benefits",
        ANNA,
        "civil-status",
        "benefit-eligibility",
        env={**settings, "HUB_PUBLIC_KEY_FILE": str(impostor)},
    )
    assert code == 1 and "the hub's signature does not verify" in err


async def test_the_shell_example_refuses_an_unsigned_answer(tmp_path: Path) -> None:
    async def impostor(request: web.Request) -> web.Response:
        return web.json_response({"exchange": "x", "zone": "white", "data": {"name": "Not Anna"}})

    app = web.Application()
    app.router.add_post("/v1/exchanges", impostor)
    key, hub_key = tmp_path / "agency.pem", tmp_path / "hub.pub.pem"
    await asyncio.to_thread(write_private_key, key)
    await asyncio.to_thread(hub_key.write_text, public_key_pem(generate_key().public_key()))
    async with serving(app) as url:
        code, out, err = await run(
            "-",
            "family-benefits",
            ANNA,
            "civil-status",
            "benefit-eligibility",
            env={
                "PATH": "/usr/local/bin:/usr/bin:/bin",
                "HUB_URL": url,
                "HUB_KEY_ID": "crossroads-hub",
                "HUB_PUBLIC_KEY_FILE": str(hub_key),
                "KEY_ID": "k-1",
                "KEY_FILE": str(key),
            },
        )
    assert (code, out) == (1, "") and "not verified: the answer is not signed" in err
