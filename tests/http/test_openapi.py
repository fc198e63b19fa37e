"""The OpenAPI document the hub serves at /openapi.json: valid OpenAPI 3.1, faithful to the routes the hub
registers, to the roles policies/operator_rules.csv lets call them, and to every problem type it answers.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from openapi_spec_validator import validate

import broker
from broker.base import errors
from broker.http import add_routes
from policies.service import OperatorGate

DOCUMENT = Path(broker.__file__).parent / "http" / "openapi.json"
ROLES = ("agency", "admin", "privacy_officer", "citizen_portal")
OPEN_PATHS = {"/healthz", "/readyz", "/openapi.json", "/metrics"}


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    loaded = json.loads(DOCUMENT.read_text())
    assert isinstance(loaded, dict)
    return loaded


def registered_routes() -> list[tuple[str, str]]:
    """(method, path) of every route add_routes registers, without the HEAD routes aiohttp adds to GETs."""
    app = web.Application()
    add_routes(app)
    return [
        (route.method, route.resource.canonical)
        for route in app.router.routes()
        if route.method != "HEAD" and route.resource is not None
    ]


def resolve(document: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        target: Any = document
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        node = target
    return node


def path_parameters(document: dict[str, Any], path_item: dict[str, Any], operation: dict[str, Any]) -> set[str]:
    parameters = [resolve(document, p) for p in path_item.get("parameters", []) + operation.get("parameters", [])]
    return {p["name"] for p in parameters if p["in"] == "path"}


def test_document_is_valid_openapi_3_1(document: dict[str, Any]) -> None:
    assert document["openapi"] == "3.1.0"
    assert document["info"]["title"] == "Crossroads hub"
    assert document["info"]["version"] == "1.0.0"
    assert document["servers"] and document["servers"][0]["url"]
    validate(document)


def test_every_registered_route_is_documented(document: dict[str, Any]) -> None:
    routes = registered_routes()
    assert routes
    for method, path in routes:
        assert path in document["paths"], f"{path} is not documented"
        path_item = document["paths"][path]
        operation = path_item.get(method.lower())
        assert operation is not None, f"{method} {path} is not documented"
        assert path_parameters(document, path_item, operation) == set(re.findall(r"\{(\w+)\}", path)), path


def test_only_registered_routes_are_documented(document: dict[str, Any]) -> None:
    registered = set(registered_routes())
    methods = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}
    documented = {
        (method.upper(), path) for path, item in document["paths"].items() for method in item if method in methods
    }
    assert documented == registered


def test_roles_match_the_operator_rules(document: dict[str, Any]) -> None:
    gate = OperatorGate()
    for method, path in registered_routes():
        operation = document["paths"][path][method.lower()]
        if path in OPEN_PATHS:
            assert operation["security"] == []
            continue
        concrete = re.sub(r"\{\w+\}", "x-1", path)
        allowed = [role for role in ROLES if gate.allows(role, concrete, method)]
        assert allowed, f"no role may call {method} {path}"
        assert operation["x-roles"] == allowed, f"{method} {path}"
        for role in allowed:
            assert f"`{role}`" in operation["description"], f"{method} {path} does not name {role} in prose"


def test_every_problem_type_is_documented(document: dict[str, Any]) -> None:
    text = json.dumps(document)
    problem_type = document["components"]["schemas"]["Problem"]["properties"]["type"]
    table = document["info"]["description"]
    assert len(errors.ALL) == len({problem.name for problem in errors.ALL})
    for problem in errors.ALL:
        uri = errors.PROBLEM_BASE + problem.name
        assert uri in problem_type["enum"], problem.name
        assert f"`{problem.name}` ({problem.status})" in problem_type["description"], problem.name
        assert f"| `{problem.name}` | {problem.status} |" in table, problem.name
        assert f"`{problem.name}`" in text
    assert len(problem_type["enum"]) == len(errors.ALL)


def test_problem_answers_use_the_shared_problem_schema(document: dict[str, Any]) -> None:
    for path, item in document["paths"].items():
        for method, operation in item.items():
            for status, answer in operation["responses"].items():
                answer = resolve(document, answer)
                if int(status) >= 400 and "application/problem+json" in answer.get("content", {}):
                    schema = answer["content"]["application/problem+json"]["schema"]
                    assert schema == {"$ref": "#/components/schemas/Problem"}, f"{method} {path} {status}"
                elif int(status) >= 400:
                    assert (path, status) == ("/readyz", "500"), f"{method} {path} {status} is not a problem"
