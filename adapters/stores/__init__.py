"""Adapters over real stores, built from a category's config entry: `sql` (a database), `csv` (an export
file) and `http` (an existing REST service). Relative paths are taken from the config file's folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import make_url

from adapters.mapping import MappingError, filter_params, parse_fields
from adapters.server import Store
from adapters.stores.flatfile import CsvStore
from adapters.stores.rest import RestStore
from adapters.stores.sql import SqlStore

KINDS = ("sql", "csv", "http")


def build_store(category: str, spec: dict[str, Any], base_dir: Path) -> Store:
    """The store a category's config entry describes; MappingError says what is wrong with the entry."""
    kind = spec.get("store")
    try:
        fields = parse_fields(spec.get("fields"))
        filters = filter_params(spec.get("filters"))
        if kind == "sql":
            return SqlStore(
                sqlalchemy_url(_text(spec, "url"), base_dir),
                fields,
                table_name=spec.get("table"),
                key=spec.get("key"),
                schema=spec.get("schema"),
                query=spec.get("query"),
                filters=filters,
            )
        if kind == "csv":
            return CsvStore(
                base_dir / _text(spec, "path"),
                _text(spec, "key"),
                fields,
                filters=filters,
                delimiter=str(spec.get("delimiter", ",")),
                encoding=str(spec.get("encoding", "utf-8-sig")),
            )
        if kind == "http":
            headers = spec.get("headers") or {}
            query = spec.get("query") or {}
            if not isinstance(headers, dict) or not isinstance(query, dict):
                raise MappingError("headers and query are mappings")
            return RestStore(
                _text(spec, "url"),
                fields,
                query={str(k): str(v) for k, v in query.items()},
                headers={str(k): str(v) for k, v in headers.items()},
                timeout_s=float(spec.get("timeout_s", 4.0)),
            )
    except MappingError as error:
        raise MappingError(f"category {category!r}: {error}") from error
    raise MappingError(f"category {category!r}: store must be one of {', '.join(KINDS)} or python, not {kind!r}")


def sqlalchemy_url(url: str, base_dir: Path) -> str:
    """`url` with a relative SQLite file taken from `base_dir`, as config paths are."""
    parsed = make_url(url)
    database = parsed.database
    if parsed.get_backend_name() == "sqlite" and database and database != ":memory:":
        path = Path(database)
        if not path.is_absolute() and not database.startswith("file:"):
            return parsed.set(database=str(base_dir / path)).render_as_string(hide_password=False)
    return url


def _text(spec: dict[str, Any], name: str) -> str:
    value = spec.get(name)
    if not isinstance(value, str) or not value:
        raise MappingError(f"{name} is required")
    return value
