"""An adapter's config file (YAML, TOML or JSON): who the agency is and its key, the hub's key, where to
listen, and for each category the store that answers it. `build_adapter` turns it into a ready Adapter.
Files are read here, at start-up, before anything is served.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import re
import sys
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from adapters.mapping import MappingError
from adapters.server import Adapter
from adapters.stores import build_store
from broker.base.signing import SigningKey, load_private_key, load_public_key

ENVIRONMENT = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class ConfigError(Exception):
    """The config file is missing, unreadable, or does not say what an adapter needs."""


@dataclass(frozen=True)
class AdapterConfig:
    source: Path  # the config file; relative paths in it are taken from its folder
    agency: str
    key_id: str
    key_file: Path
    hub_key_id: str
    hub_public_key_file: Path
    host: str
    port: int
    public_url: str
    categories: dict[str, dict[str, Any]]
    notifications: str | None = None  # "module:function" receiving the hub's change notifications

    @property
    def base_dir(self) -> Path:
        return self.source.parent


def read_document(path: Path) -> dict[str, Any]:
    """A YAML, TOML or JSON file as a mapping, with `${NAME}` replaced from the environment."""
    try:
        text = path.read_text(encoding="utf-8")
        if path.suffix == ".toml":
            document: Any = tomllib.loads(text)
        elif path.suffix == ".json":
            document = json.loads(text)
        else:
            document = yaml.safe_load(text)
    except (OSError, ValueError, yaml.YAMLError) as error:
        raise ConfigError(f"{path}: {error}") from error
    if not isinstance(document, dict):
        raise ConfigError(f"{path}: an adapter config is a mapping")
    return dict(_environment(document))


def read_config(path: Path) -> AdapterConfig:
    document = read_document(path)
    base = path.parent
    try:
        key, hub, listen = document["key"], document["hub"], document.get("listen", {})
        host, port = str(listen.get("host", "127.0.0.1")), int(listen.get("port", 8090))
        categories = document.get("categories") or {}
        if not isinstance(categories, dict) or not all(isinstance(spec, dict) for spec in categories.values()):
            raise ConfigError(f"{path}: categories maps each category to its store")
        return AdapterConfig(
            source=path,
            agency=str(document["agency"]),
            key_id=str(key["id"]),
            key_file=base / str(key["file"]),
            hub_key_id=str(hub["key_id"]),
            hub_public_key_file=base / str(hub["public_key_file"]),
            host=host,
            port=port,
            public_url=str(document.get("public_url") or f"http://{host}:{port}"),
            categories={str(name): dict(spec) for name, spec in categories.items()},
            notifications=document.get("notifications"),
        )
    except KeyError as error:
        raise ConfigError(f"{path}: {error.args[0]!r} is required") from error
    except (TypeError, ValueError, AttributeError) as error:
        raise ConfigError(f"{path}: {error}") from error


def build_adapter(
    config: AdapterConfig, *, hub_key_id: str | None = None, hub_public_key: Ed25519PublicKey | None = None
) -> Adapter:
    """The adapter the config describes; `hub_key_id` and `hub_public_key` stand in for the hub's (tests)."""
    try:
        key = SigningKey(config.key_id, load_private_key(config.key_file.read_bytes()))
        if hub_public_key is None:
            hub_public_key = load_public_key(config.hub_public_key_file.read_bytes())
    except FileNotFoundError as error:
        raise ConfigError(f"{error.filename} does not exist") from error
    except ValueError as error:
        raise ConfigError(str(error)) from error
    adapter = Adapter(config.agency, key, hub_key_id or config.hub_key_id, hub_public_key, config.public_url)
    for category, spec in config.categories.items():
        params = spec.get("params")
        try:
            if spec.get("store") == "python":
                adapter.category(category, params)(_function(config.base_dir, spec.get("handler")))
            else:
                adapter.serve(category, build_store(category, spec, config.base_dir), params)
        except MappingError as error:
            raise ConfigError(f"{config.source}: {error}") from error
    if config.notifications is not None:
        adapter.notifications(_function(config.base_dir, config.notifications))
    return adapter


def run(config: AdapterConfig, adapter: Adapter | None = None) -> None:
    """Serve `adapter` (by default the one the config describes) where the config says, until interrupted."""
    served = adapter or build_adapter(config)
    web.run_app(served.app(), host=config.host, port=config.port, access_log=None, print=None)


def _function(base_dir: Path, reference: Any) -> Callable[..., Any]:
    """`module:function`: the module is a file beside the config (`handlers.py`) or an installed module."""
    if not isinstance(reference, str) or ":" not in reference:
        raise ConfigError(f"a python handler is named module:function, not {reference!r}")
    module_name, function_name = reference.split(":", 1)
    path = base_dir / (module_name.replace(".", "/") + ".py")
    if path.exists():
        unique = f"crossroads_adapter_{abs(hash(path.resolve()))}_{module_name.replace('.', '_')}"
        spec = importlib.util.spec_from_file_location(unique, path)
        if spec is None or spec.loader is None:
            raise ConfigError(f"{path} cannot be loaded as a Python module")
        module = importlib.util.module_from_spec(spec)
        sys.modules[unique] = module
        spec.loader.exec_module(module)
    else:
        module = importlib.import_module(module_name)
    function = getattr(module, function_name, None)
    if not callable(function):
        raise ConfigError(f"{reference}: no such function")
    return function  # type: ignore[no-any-return]


def _environment(value: Any) -> Any:
    if isinstance(value, str):
        return ENVIRONMENT.sub(lambda match: _variable(match.group(1)), value)
    if isinstance(value, dict):
        return {key: _environment(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_environment(item) for item in value]
    return value


def _variable(name: str) -> str:
    try:
        return os.environ[name]
    except KeyError as error:
        raise ConfigError(f"the environment variable {name} is not set") from error
