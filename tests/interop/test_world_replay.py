"""Replays the demo world's scenario against a live hub, as an outside agency would.

This file owns the end-to-end interop check: it starts `python -m broker demo
--serve` in a subprocess, reads the world it describes (world.json), and talks
to the hub over HTTP using only `protocol_client`, i.e. only what PROTOCOL.md
says. Every answer must carry a verifiable hub signature bound to the request.
"""

from __future__ import annotations

import asyncio
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import aiohttp
import pytest
import yarl
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key, load_pem_public_key
from multidict import CIMultiDict

from .protocol_client import (
    SealedAnswerError,
    SignatureError,
    content_digest,
    open_sealed_answer,
    sign_request,
    verify_response,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
READY_TIMEOUT = 60.0
STOP_TIMEOUT = 10.0
REQUEST_TIMEOUT = 30.0
PROBLEM_MEDIA_TYPE = "application/problem+json"
REQUIRED_BINDING = ('"@method";req', '"@target-uri";req')
SOFIE = "78112233344"  # the demo's subject who consented to family benefits reading her income


@dataclass(frozen=True)
class Reply:
    status: int
    headers: CIMultiDict[str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def media_type(self) -> str:
        return self.headers.get("Content-Type", "").split(";", 1)[0].strip().lower()

    def describe(self) -> str:
        return f"{self.status} {self.body[:500]!r}"


@dataclass(frozen=True)
class World:
    """What world.json says, with the keys loaded."""

    hub_url: str
    hub_key_id: str
    hub_public_key: Ed25519PublicKey
    agency_keys: dict[str, tuple[str, Ed25519PrivateKey]]
    sealing_keys: dict[str, tuple[str, X25519PrivateKey]]  # agency → the key id and X25519 key it opens answers with
    operator_keys: dict[str, tuple[str, Ed25519PrivateKey]]
    operator_roles: dict[str, str]
    scenario: list[dict[str, Any]]

    @property
    def exchange_url(self) -> str:
        return self.hub_url.rstrip("/") + "/v1/exchanges"

    def url(self, path: str) -> str:
        return self.hub_url.rstrip("/") + path

    def signed_exchange(self, requester: str, request: Mapping[str, Any]) -> tuple[bytes, dict[str, str]]:
        """The JSON body for `request` and the headers signing it with the requester's key."""
        key_id, private_key = self.agency_keys[requester]
        body = json.dumps(request).encode("utf-8")
        return body, sign_request("POST", self.exchange_url, body, key_id, private_key)

    def signed_operation(
        self, operator: str, method: str, url: str, document: Mapping[str, Any]
    ) -> tuple[bytes, dict[str, str]]:
        """The JSON body for an operator's call and the headers signing it with the operator's key."""
        key_id, private_key = self.operator_keys[operator]
        body = json.dumps(document).encode("utf-8")
        return body, sign_request(method, url, body, key_id, private_key)


def _load_private_key(path: Path) -> Ed25519PrivateKey:
    key = load_pem_private_key(path.read_bytes(), password=None)
    assert isinstance(key, Ed25519PrivateKey), f"{path} is not an Ed25519 private key"
    return key


def _load_sealing_key(path: Path) -> X25519PrivateKey:
    key = load_pem_private_key(path.read_bytes(), password=None)
    assert isinstance(key, X25519PrivateKey), f"{path} is not an X25519 private key"
    return key


def _load_world(state_dir: Path) -> World:
    document = json.loads((state_dir / "world.json").read_text(encoding="utf-8"))
    hub = document["hub"]
    hub_public_key = load_pem_public_key(hub["public_key_pem"].encode("ascii"))
    assert isinstance(hub_public_key, Ed25519PublicKey), "the hub key is not Ed25519"
    agencies, operators = document["agencies"], document.get("operators", [])
    return World(
        hub_url=hub["url"],
        hub_key_id=hub["key_id"],
        hub_public_key=hub_public_key,
        agency_keys={
            agency["id"]: (agency["key_id"], _load_private_key(state_dir / agency["private_key_path"]))
            for agency in agencies
        },
        sealing_keys={
            agency["id"]: (agency["sealing_key_id"], _load_sealing_key(state_dir / agency["sealing_key_path"]))
            for agency in agencies
            if "sealing_key_path" in agency
        },
        operator_keys={
            operator["id"]: (operator["key_id"], _load_private_key(state_dir / operator["private_key_path"]))
            for operator in operators
        },
        operator_roles={operator["id"]: operator["role"] for operator in operators},
        scenario=document["scenario"],
    )


def _pump(stream: IO[str], lines: queue.Queue[str | None]) -> None:
    # Keeps draining stdout for the hub's whole life, so that it never blocks
    # on a full pipe; None marks end of file.
    for line in stream:
        lines.put(line)
    lines.put(None)


def _wait_until_ready(process: subprocess.Popen[str], lines: queue.Queue[str | None], stderr_path: Path) -> None:
    seen: list[str] = []
    deadline = time.monotonic() + READY_TIMEOUT
    while True:
        try:
            line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            pytest.fail(
                f"the demo hub did not print 'ready' within {READY_TIMEOUT:.0f} s\n"
                f"stdout:\n{''.join(seen)}\nstderr:\n{stderr_path.read_text(errors='replace')}"
            )
        if line is None:
            try:
                code: int | None = process.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                code = None
            pytest.fail(
                f"the demo hub closed its stdout (exit code {code}) before printing 'ready'\n"
                f"stdout:\n{''.join(seen)}\nstderr:\n{stderr_path.read_text(errors='replace')}"
            )
        if line.rstrip("\r\n") == "ready":
            return
        seen.append(line)


def _stop(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        # SIGINT first: the hub should get the chance to shut down cleanly.
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    state_dir = tmp_path_factory.mktemp("state")
    # stderr goes to a file outside the state dir: it can never fill a pipe,
    # and it does not mix with what the hub keeps there.
    stderr_path = tmp_path_factory.mktemp("logs") / "hub.stderr"
    with stderr_path.open("w") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "broker", "demo", "--serve", "--state-dir", str(state_dir)],
            cwd=REPO_ROOT,
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            # 'ready' must reach us even if the hub forgets to flush stdout.
            env=os.environ | {"PYTHONUNBUFFERED": "1"},
        )
        assert process.stdout is not None
        lines: queue.Queue[str | None] = queue.Queue()
        reader = threading.Thread(target=_pump, args=(process.stdout, lines), daemon=True)
        reader.start()
        try:
            _wait_until_ready(process, lines, stderr_path)
            yield _load_world(state_dir)
        finally:
            _stop(process)
            reader.join(timeout=STOP_TIMEOUT)
            assert not reader.is_alive(), "the demo hub's stdout is still open: a child process outlived it"
            process.stdout.close()


async def _send(method: str, url: str, body: bytes, headers: Mapping[str, str]) -> Reply:
    # No automatic decompression: Content-Digest covers the bytes as sent.
    # encoded=True keeps the URL byte for byte what `@target-uri` signed.
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT), auto_decompress=False) as session,
        session.request(
            method, yarl.URL(url, encoded=True), data=body, headers={**headers, "Accept-Encoding": "identity"}
        ) as response,
    ):
        return Reply(response.status, CIMultiDict(response.headers), await response.read())


def post(url: str, body: bytes, headers: Mapping[str, str]) -> Reply:
    return asyncio.run(_send("POST", url, body, headers))


def send(method: str, url: str, body: bytes, headers: Mapping[str, str]) -> Reply:
    return asyncio.run(_send(method, url, body, headers))


def check_hub_signature(
    world: World,
    reply: Reply,
    sent_headers: Mapping[str, str],
    context: str,
    *,
    method: str = "POST",
    url: str | None = None,
) -> None:
    """Every answer to an exchange (or to another call: `method` and `url`) is signed by the hub and bound to the
    request it answers."""
    try:
        covered = verify_response(
            reply.status,
            reply.headers,
            reply.body,
            method,
            world.exchange_url if url is None else url,
            sent_headers,
            world.hub_public_key,
            key_id=world.hub_key_id,
        )
    except SignatureError as exc:
        pytest.fail(f"{context}: hub signature rejected: {exc}; reply {reply.describe()}")
    missing = [component for component in REQUIRED_BINDING if component not in covered]
    assert not missing, f"{context}: response signature covers {covered}, lacking {missing}"


def problem_type_matches(problem_type: str, expected: str) -> bool:
    # world.json may name a problem by its full type URI or by its last segment.
    if expected.startswith(("http://", "https://")):
        return problem_type == expected
    return problem_type.rsplit("/", 1)[-1] == expected


def check_problem(reply: Reply, context: str) -> dict[str, Any]:
    assert reply.media_type() == PROBLEM_MEDIA_TYPE, f"{context}: Content-Type {reply.headers.get('Content-Type')}"
    problem: dict[str, Any] = reply.json()
    assert problem.get("status") == reply.status, f"{context}: problem status {problem.get('status')}"
    return problem


def check_case(case: Mapping[str, Any], reply: Reply) -> None:
    expect = case["expect"]
    context = f"case {case['name']!r}"
    assert reply.status == expect["status"], f"{context}: expected {expect['status']}, got {reply.describe()}"
    if expect.get("problem") is not None:
        problem = check_problem(reply, context)
        assert problem_type_matches(problem.get("type", ""), expect["problem"]), (
            f"{context}: problem type {problem.get('type')!r}, expected {expect['problem']!r}"
        )
        return
    answer = reply.json()
    if reply.status == 200:
        missing = [member for member in ("zone", "holder", "exchange", "data") if member not in answer]
        assert not missing, f"{context}: answer lacks {missing}: {reply.describe()}"
    elif reply.status == 202:
        assert "review" in answer, f"{context}: answer lacks 'review': {reply.describe()}"
        assert answer.get("status") == "pending", f"{context}: review status {answer.get('status')!r}"
    if reply.status in (200, 202) and expect.get("zone") is not None:
        assert answer.get("zone") == expect["zone"], f"{context}: zone {answer.get('zone')!r}"


def test_scenario_replays_as_expected(world: World) -> None:
    assert world.scenario, "world.json has an empty scenario"
    for case in world.scenario:
        body, headers = world.signed_exchange(case["requester"], case["request"])
        reply = post(world.exchange_url, body, headers)
        check_hub_signature(world, reply, headers, f"case {case['name']!r}")
        check_case(case, reply)


def _repeatable_case(world: World) -> dict[str, Any]:
    # A delivered case is one the hub fully accepts, so the only thing wrong
    # with its second sending is that it is a replay.
    delivered = [case for case in world.scenario if case["expect"]["status"] == 200]
    return (delivered or world.scenario)[0]


def test_resent_signed_request_is_a_replay(world: World) -> None:
    case = _repeatable_case(world)
    body, headers = world.signed_exchange(case["requester"], case["request"])
    first = post(world.exchange_url, body, headers)
    check_hub_signature(world, first, headers, "first sending")
    assert first.status != 409, f"first sending already refused as a replay: {first.describe()}"

    replay = post(world.exchange_url, body, headers)
    check_hub_signature(world, replay, headers, "replay")
    assert replay.status == 409, f"replay: expected 409, got {replay.describe()}"
    problem_type = check_problem(replay, "replay").get("type", "")
    assert problem_type.endswith("/replay"), f"replay: problem type {problem_type!r}"


def test_unsigned_request_is_refused(world: World) -> None:
    case = world.scenario[0]
    body = json.dumps(case["request"]).encode("utf-8")
    # Digest but no signature, so that only the signature is missing.
    headers = {"Content-Type": "application/json", "Content-Digest": content_digest(body)}
    reply = post(world.exchange_url, body, headers)
    check_hub_signature(world, reply, headers, "unsigned request")
    assert reply.status == 401, f"unsigned request: expected 401, got {reply.describe()}"
    check_problem(reply, "unsigned request")


def test_body_changed_after_signing_is_refused(world: World) -> None:
    case = world.scenario[0]
    _, headers = world.signed_exchange(case["requester"], case["request"])
    changed = dict(case["request"], purpose=case["request"]["purpose"] + "-changed")
    changed_body = json.dumps(changed).encode("utf-8")
    reply = post(world.exchange_url, changed_body, headers)
    check_hub_signature(world, reply, headers, "changed body")
    assert reply.status == 401, f"changed body: expected 401, got {reply.describe()}"
    check_problem(reply, "changed body")


def _seal_category(world: World, category: str, sealed: bool) -> None:
    """An administrator of world.json marks `category` sealed, or plain again, as PROTOCOL.md's registry allows."""
    admin = next(operator for operator, role in world.operator_roles.items() if role == "admin")
    url = world.url(f"/v1/categories/{category}")
    document = {"sealed": sealed, "reason": "interop: sealed answers" if sealed else "interop: done"}
    body, headers = world.signed_operation(admin, "PATCH", url, document)
    reply = send("PATCH", url, body, headers)
    check_hub_signature(world, reply, headers, f"{admin} seals {category}", method="PATCH", url=url)
    assert reply.status == 200, f"{admin} seals {category}: expected 200, got {reply.describe()}"
    answer = reply.json()
    assert (answer.get("name"), answer.get("sealed")) == (category, sealed), f"seal {category}: {reply.describe()}"


def test_sealed_answer_opens_with_the_requesters_key_alone(world: World) -> None:
    # Last in the file: it seals income for a while, and unseals it again whatever happens.
    requester, request = "family-benefits", {"subject": SOFIE, "category": "income", "purpose": "benefit-eligibility"}
    _seal_category(world, "income", True)
    try:
        body, headers = world.signed_exchange(requester, request)
        reply = post(world.exchange_url, body, headers)
        check_hub_signature(world, reply, headers, "sealed answer")
        assert reply.status == 200, f"sealed answer: expected 200, got {reply.describe()}"
        answer = reply.json()
        assert "data" not in answer, f"sealed answer: the hub shows the record: {reply.describe()}"
        assert (answer.get("zone"), answer.get("holder")) == ("white", "tax-authority"), reply.describe()

        key_id, private_key = world.sealing_keys[requester]
        try:
            opened = open_sealed_answer(answer, key_id, private_key)
        except SealedAnswerError as exc:
            pytest.fail(f"sealed answer: {exc}; reply {reply.describe()}")
        # The rule lets family benefits read the taxable income of a year, no more of the tax record.
        assert set(opened.fields or ()) == {"taxable_income", "year"}, f"sealed answer: fields {opened.fields}"
        assert set(opened.data) == {"taxable_income", "year"}, f"sealed answer: record {opened.data}"

        with pytest.raises(SealedAnswerError, match="does not open"):
            open_sealed_answer(answer, key_id, X25519PrivateKey.generate())
        with pytest.raises(SealedAnswerError, match="sealed to"):
            open_sealed_answer(answer, "someone-else-seal", private_key)
    finally:
        _seal_category(world, "income", False)

    body, headers = world.signed_exchange(requester, request)
    reply = post(world.exchange_url, body, headers)
    check_hub_signature(world, reply, headers, "unsealed again")
    assert reply.status == 200 and "data" in reply.json(), f"unsealed again: {reply.describe()}"
