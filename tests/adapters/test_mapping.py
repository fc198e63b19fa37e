"""Field mappings (pure): lookups by column or JSON path, conversions to the declared type, JSON values."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from adapters.mapping import Field, MappingError, convert, jsonable, lookup, parse_fields, project


@given(st.integers(min_value=-(10**12), max_value=10**12))
def test_an_exported_integer_comes_back_as_itself(number: int) -> None:
    assert convert(str(number), Field("n", "n", "integer")) == number
    assert convert(str(number), Field("n", "n", "number")) == number


def test_lookups_and_conversions() -> None:
    record = {"a.b": 1, "a": {"b": 2, "list": [{"c": 3}]}, "flag": "Yes", "empty": ""}
    assert lookup(record, "a.b") == 1  # a column named with a dot wins over the path
    assert lookup(record, "a.list.0.c") == 3
    assert lookup(record, "a.list.5.c") is None and lookup(record, "missing.x") is None
    fields = parse_fields(
        {"flag": {"source": "flag", "type": "boolean"}, "empty": {"type": "integer"}, "c": "a.list.0.c"}
    )
    assert project(record, fields) == {"flag": True, "empty": None, "c": 3}
    assert convert("12.50", Field("x", "x", "number")) == 12.5
    with pytest.raises(MappingError, match="'x' does not hold a valid integer"):
        convert("twelve", Field("x", "x", "integer"))
    with pytest.raises(MappingError):
        convert("maybe", Field("x", "x", "boolean"))
    assert parse_fields(["a", "b"]) == (Field("a", "a"), Field("b", "b"))


def test_stored_values_become_json() -> None:
    assert jsonable({"d": dt.date(2026, 3, 1), "n": Decimal("4.0"), "l": (Decimal("0.5"),)}) == {
        "d": "2026-03-01",
        "n": 4,
        "l": [0.5],
    }
    for unanswerable in (b"raw", object()):
        with pytest.raises(MappingError):
            jsonable(unanswerable)
