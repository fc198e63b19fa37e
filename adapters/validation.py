"""Per-category checks of an exchange's `params` at the adapter: a JSON Schema, or a function that raises
`InvalidParams`. Problems name the failing parameter and constraint, never the value sent.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from jsonschema import validators
from jsonschema.exceptions import best_match

ParamsValidator = Callable[[dict[str, Any]], None]
ParamsCheck = Mapping[str, Any] | ParamsValidator


class InvalidParams(Exception):
    """The params do not suit the category; the adapter answers `422 invalid`."""


def params_validator(check: ParamsCheck) -> ParamsValidator:
    """A validator from a JSON Schema (checked here, once) or the function itself."""
    if callable(check):
        return check
    schema = dict(check)
    validator_class = validators.validator_for(schema)
    validator_class.check_schema(schema)
    validator = validator_class(schema)

    def validate(params: dict[str, Any]) -> None:
        error = best_match(validator.iter_errors(params))
        if error is not None:
            where = "/".join(str(part) for part in error.absolute_path)
            raise InvalidParams(f"params{'/' + where if where else ''} fails the schema's {error.validator!r} rule")

    return validate
