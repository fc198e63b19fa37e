"""The project's metadata in pyproject.toml, as packaging tools read it."""

from __future__ import annotations

import tomllib
from pathlib import Path

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


def test_the_licence_is_an_spdx_expression() -> None:
    """PEP 639: a table (`{text = ...}`) is deprecated, and every install warns about it."""
    assert tomllib.loads(PYPROJECT.read_text())["project"]["license"] == "EUPL-1.2"
