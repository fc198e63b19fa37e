"""adapters/examples/curl-exchange.sh completes a signed exchange against a live hub with only curl,
openssl and shell tools, and refuses an answer it cannot verify with the hub's key; a sealed answer it
checks with openssl too and opens with python3 and pyhpke, or refuses.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from adapters.examples.demo_agencies import ANNA, SOFIE
from adapters.examples.legacy_rest import serving
from broker.base.keyfiles import write_private_key
from broker.base.signing import generate_key, public_key_pem
from broker.cli.demo import DemoWorld, sealing_key_id

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


def _python_with_hpke() -> Path | None:
    """The folder of a `python3` that can import pyhpke, as the script needs to open a sealed answer: the tests' own
    interpreter's (the project's venv), put first on the script's PATH; None where it has no python3 or no pyhpke."""
    folder = Path(sys.executable).parent
    if not (folder / "python3").exists():
        return None
    probe = subprocess.run([str(folder / "python3"), "-c", "import pyhpke"], capture_output=True, check=False)
    return folder if probe.returncode == 0 else None


MISSING = _missing_tools()
pytestmark = pytest.mark.skipif(MISSING is not None, reason=f"the shell example cannot run here: {MISSING}")
HPKE_PYTHON = _python_with_hpke()


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


@pytest.mark.skipif(HPKE_PYTHON is None, reason=f"no python3 beside {sys.executable} that imports pyhpke")
async def test_the_shell_example_opens_a_sealed_answer(
    sqlite_world: DemoWorld, session: aiohttp.ClientSession, tmp_path: Path
) -> None:
    world_file = sqlite_world.state_dir / "world.json"
    await asyncio.to_thread(world_file.write_text, json.dumps(sqlite_world.description()))
    await sqlite_world.client("admin-desk", session).call(
        "PATCH", "/v1/categories/income", {"sealed": True, "reason": "test"}
    )
    # The script opens the sealed answer with `python3`: the one beside this interpreter, which has pyhpke.
    env = {**os.environ, "PATH": f"{HPKE_PYTHON}{os.pathsep}{os.environ.get('PATH', '')}"}

    code, out, err = await run(str(world_file), "family-benefits", SOFIE, "income", "benefit-eligibility", env=env)
    assert (code, err.splitlines()) == (0, ["HTTP 200, signature verified", "sealed answer verified and opened"]), out
    answer_line, opened_line = out.splitlines()
    answer = json.loads(answer_line)
    assert (answer["zone"], answer["holder"], "data" in answer) == ("white", "tax-authority", False)
    assert set(answer["sealed"]) == {"protected", "payload", "signature"}
    assert json.loads(opened_line) == {"opened": {"taxable_income": 35400, "year": 2025}}
    [record] = await sqlite_world.hub.audit.records(exchange=answer["exchange"])
    assert (record.requester, record.status) == ("family-benefits", 200)

    # Another X25519 key under family benefits' sealing key id: the answer names that id, but does not open.
    stranger = tmp_path / "stranger.seal.pem"
    pem = X25519PrivateKey.generate().private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    await asyncio.to_thread(stranger.write_bytes, pem)
    code, out, err = await run(
        str(world_file),
        "family-benefits",
        SOFIE,
        "income",
        "benefit-eligibility",
        env={**env, "SEALING_KEY_FILE": str(stranger), "SEALING_KEY_ID": sealing_key_id("family-benefits")},
    )
    assert (code, out) == (1, "") and "not verified: the sealed answer does not open with" in err, err
