"""Schema fuzzing: schemathesis generates requests for every operation of the OpenAPI document the hub serves,
valid and invalid ones, each signed by a principal whose role may call the operation (so the fuzzing reaches
the handlers instead of stopping at 401), against a live demo hub in its own process. No answer may be a 5xx,
and every answer must be one the document describes: its status, content type, headers and body schema.

Bounded: a fixed number of examples per operation, derandomized, so a run takes the same requests each time.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

import broker
from broker.base.signing import SigningKey, load_private_key
from tests.hostile.forge import Signing, sign


@schemathesis.serializer("application/x-ndjson")
def ndjson(_context: schemathesis.SerializationContext, value: object) -> bytes:
    """A bulk import's body: the generated text as the lines of the file."""
    return str(value).encode("utf-8", "surrogatepass")


SCHEMA = schemathesis.openapi.from_path(Path(broker.__file__).parent / "http" / "openapi.json")
PRINCIPAL_OF_ROLE = {
    "agency": "family-benefits",
    "admin": "admin-desk",
    "privacy_officer": "privacy-office",
    "citizen_portal": "citizen-portal",
}
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


@dataclass(frozen=True)
class LiveHub:
    url: str
    keys: dict[str, SigningKey]  # principal id → its signing key


@pytest.fixture(scope="module")
def live_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveHub]:
    """`crossroads demo --serve`: the demo world in its own process, described in STATE/world.json."""
    state = tmp_path_factory.mktemp("fuzzed")
    process = subprocess.Popen(
        [sys.executable, "-m", "broker", "demo", "--serve", "--state-dir", str(state)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert process.stdout is not None
        said = [process.stdout.readline() for _ in range(1)]
        while said[-1] and said[-1].strip() != "ready" and len(said) < 50:  # `ready` once it serves; EOF if it died
            said.append(process.stdout.readline())
        assert said[-1].strip() == "ready", "".join(said)
        world = json.loads((state / "world.json").read_text())
        keys = {
            principal["id"]: SigningKey(
                principal["key_id"], load_private_key((state / principal["private_key_path"]).read_bytes())
            )
            for principal in world["agencies"] + world["operators"]
        }
        yield LiveHub(world["hub"]["url"], keys)
    finally:
        process.terminate()
        process.wait(timeout=30)
        if process.stdout is not None:
            process.stdout.close()


@SCHEMA.parametrize()
@settings(
    max_examples=10,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=list(HealthCheck),
)
def test_every_operation_answers_within_the_document(case: schemathesis.Case, live_hub: LiveHub) -> None:
    prepared = requests.Request(**case.as_transport_kwargs(base_url=live_hub.url)).prepare()
    roles = case.operation.definition.raw.get("x-roles", [])
    if case.operation.definition.raw.get("security") != []:
        key = live_hub.keys[PRINCIPAL_OF_ROLE[roles[0]]]
        body = prepared.body.encode() if isinstance(prepared.body, str) else prepared.body
        content_type = prepared.headers.get("Content-Type", "application/json")
        url = prepared.url or ""
        for name, value in sign(prepared.method or "", url, body, key.key_id, key.private_key, Signing(), content_type):
            prepared.headers[name] = value
    with requests.Session() as session:
        response = session.send(prepared, timeout=30)
    case.validate_response(response, checks=CHECKS)
