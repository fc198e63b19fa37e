"""Settings come from flags, then CROSSROADS_* variables, then a TOML file, then defaults; `config show`
says which, and never prints a secret."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from broker.cli.main import main
from broker.config import ConfigError, load_config


def test_precedence(tmp_path: Path) -> None:
    toml = tmp_path / "hub.toml"
    toml.write_text('[hub]\nport = 9000\nhost = "0.0.0.0"\nrate_per_s = 50\nstate_dir = "/var/lib/x"\n')
    config, sources = load_config({"port": 9100}, {"CROSSROADS_HOST": "10.0.0.5", "CROSSROADS_RATE_BURST": "80"}, toml)
    assert (config.port, config.host, config.rate_per_s, config.rate_burst) == (9100, "10.0.0.5", 50.0, 80.0)
    assert config.state_dir == Path("/var/lib/x")
    assert (sources["port"], sources["host"], sources["rate_per_s"], sources["holder_timeout_s"]) == (
        "flag",
        "CROSSROADS_HOST",
        str(toml),
        "default",
    )


@pytest.mark.parametrize(
    ("environ", "toml", "message"),
    [
        ({"CROSSROADS_PORT": "eighty"}, "", "port must be of type int"),
        ({}, "[hub]\nprot = 1\n", "unknown settings prot"),
        ({}, "[hub]\nport = true\n", "port must be"),
    ],
)
def test_bad_settings_are_refused(tmp_path: Path, environ: dict[str, str], toml: str, message: str) -> None:
    path = tmp_path / "hub.toml"
    path.write_text(toml)
    with pytest.raises(ConfigError, match=message):
        load_config({}, environ, path)


def test_config_show_masks_the_database_password(tmp_path: Path) -> None:
    environ = {"CROSSROADS_DATABASE_URL": "postgresql+asyncpg://hub:s3cret@db.example/crossroads"}
    result = CliRunner().invoke(main, ["config", "show"], env=environ)
    assert result.exit_code == 0, result.output
    assert "s3cret" not in result.output
    assert (
        'database_url = "postgresql+asyncpg://hub:****@db.example/crossroads"  # CROSSROADS_DATABASE_URL'
        in result.output
    )
