"""Field mappings from an agency's own records to the answer it gives the hub (pure): which answer field
comes from which column or JSON path, converted to which JSON type. Only mapped fields leave the adapter.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

TYPES = ("string", "integer", "number", "boolean")
TRUE, FALSE = frozenset({"true", "yes", "y", "1", "t"}), frozenset({"false", "no", "n", "0", "f"})


class MappingError(ValueError):
    """A mapping is misconfigured, or a stored value cannot be converted to its field's type."""


@dataclass(frozen=True)
class Field:
    name: str  # in the answer
    source: str  # a column, or a dotted path into a JSON document (`situation.code`, `contracts.0.kind`)
    type: str | None = None  # one of TYPES; None keeps the store's own JSON type


def parse_fields(spec: Any) -> tuple[Field, ...]:
    """Fields from a config: a list of names (same in store and answer) or a mapping of answer name to a
    source or to `{source, type}`."""
    if isinstance(spec, list) and spec and all(isinstance(name, str) for name in spec):
        return tuple(Field(name, name) for name in spec)
    if not isinstance(spec, dict) or not spec:
        raise MappingError("fields must be a non-empty list of names or a mapping of answer field to source")
    fields = []
    for name, source in spec.items():
        if isinstance(source, str):
            fields.append(Field(str(name), source))
            continue
        if not isinstance(source, dict) or not isinstance(source.get("source", name), str):
            raise MappingError(f"field {name!r}: give a source name, or {{source, type}}")
        kind = source.get("type")
        if kind is not None and kind not in TYPES:
            raise MappingError(f"field {name!r}: type must be one of {', '.join(TYPES)}")
        fields.append(Field(str(name), str(source.get("source", name)), kind))
    return tuple(fields)


def project(record: Mapping[str, Any], fields: Sequence[Field]) -> dict[str, Any]:
    """The answer: each mapped field looked up in `record` and converted; absent or empty values are null."""
    return {field.name: convert(lookup(record, field.source), field) for field in fields}


def lookup(record: Any, source: str) -> Any:
    """`record[source]` if there is such a key, else the value at the dotted path; None where it is absent."""
    if isinstance(record, Mapping) and source in record:
        return record[source]
    value = record
    for part in source.split("."):
        if isinstance(value, Mapping):
            value = value.get(part)
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return None
    return value


def convert(value: Any, field: Field) -> Any:
    if value is None or value == "":
        return None
    try:
        if field.type == "string":
            return str(jsonable(value))
        if field.type == "integer":
            return int(value)
        if field.type == "number":
            number = Decimal(str(value))
            return int(number) if number == number.to_integral_value() else float(number)
        if field.type == "boolean":
            return _boolean(value)
    except (ValueError, ArithmeticError) as error:
        raise MappingError(f"field {field.name!r} does not hold a valid {field.type}") from error
    return jsonable(value)


def jsonable(value: Any) -> Any:
    """A stored value as JSON: dates as ISO 8601, decimals as numbers, lists and objects item by item."""
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, bytes | bytearray | memoryview):
        raise MappingError("binary values cannot be answered")
    if isinstance(value, list | tuple):
        return [jsonable(item) for item in value]
    if isinstance(value, Mapping):
        return {str(key): jsonable(item) for key, item in value.items()}
    if value is None or isinstance(value, str | int | float):
        return value
    raise MappingError(f"values of type {type(value).__name__} cannot be answered")


def _boolean(value: Any) -> bool:
    if isinstance(value, bool | int):
        return bool(value)
    text = str(value).strip().lower()
    if text in TRUE or text in FALSE:
        return text in TRUE
    raise ValueError(text)


def filter_params(spec: Any) -> dict[str, str]:
    """`filters` from a config: request param name → the column (or path) it must equal."""
    if spec is None:
        return {}
    if not isinstance(spec, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in spec.items()):
        raise MappingError("filters must map request param names to column names")
    return dict(spec)
