"""The deployment files are valid with the tools this machine has: YAML parses and says what a hub needs,
`nginx -t` accepts the load balancer, `systemd-analyze verify` accepts the unit, and every setting named is
one the hub reads."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from broker.config import ENV_NAMES

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def _settings_the_hub_reads() -> set[str]:
    store_flags = {"CROSSROADS_STATE_DIR", "CROSSROADS_DATABASE_URL", "CROSSROADS_CONFIG"}
    return set(ENV_NAMES.values()) | store_flags


def test_every_setting_named_is_one_the_hub_reads() -> None:
    named = set()
    for path in [DEPLOY / "hub.env", DEPLOY / "compose.yaml", *sorted((DEPLOY / "k8s").glob("*.yaml"))]:
        named |= set(re.findall(r"\b(CROSSROADS_[A-Z_]+)\b", path.read_text()))
    assert named and named <= _settings_the_hub_reads(), named - _settings_the_hub_reads()


def test_compose_runs_two_hubs_behind_nginx_after_migrating() -> None:
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    services = compose["services"]
    assert {"postgres", "migrate", "hub-1", "hub-2", "nginx"} <= set(services)
    for hub in ("hub-1", "hub-2"):
        assert services[hub]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
        assert services[hub]["environment"]["CROSSROADS_PUBLIC_URL"] == "http://localhost:8080"
    assert services["migrate"]["command"] == ["db", "upgrade"]
    upstreams = re.findall(r"server (hub-\d):8080", (DEPLOY / "nginx.conf").read_text())
    assert sorted(upstreams) == ["hub-1", "hub-2"]


def test_kubernetes_manifests() -> None:
    documents = [yaml.safe_load(path.read_text()) for path in sorted((DEPLOY / "k8s").glob("*.yaml"))]
    kinds = {document["kind"]: document for document in documents}
    assert set(kinds) == {"ConfigMap", "Secret", "Deployment", "Service", "PodDisruptionBudget", "Job"}
    deployment = kinds["Deployment"]["spec"]
    pod = deployment["template"]["spec"]
    [hub] = pod["containers"]
    assert deployment["replicas"] >= 2 and pod["securityContext"]["runAsNonRoot"] is True
    assert hub["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert hub["livenessProbe"]["httpGet"]["path"] == "/healthz"
    labels = deployment["template"]["metadata"]["labels"]
    for selector in (
        deployment["selector"]["matchLabels"],
        kinds["Service"]["spec"]["selector"],
        kinds["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"],
    ):
        assert selector.items() <= labels.items()
    assert kinds["Job"]["spec"]["template"]["spec"]["containers"][0]["args"] == ["db", "upgrade"]


def test_dockerfile_runs_as_a_non_root_user() -> None:
    lines = (DEPLOY / "Dockerfile").read_text().splitlines()
    assert any(line.startswith("FROM python:3.11-slim") for line in lines)
    assert [line for line in lines if line.startswith("USER ")] == ["USER crossroads"]


@pytest.mark.skipif(shutil.which("nginx") is None, reason="nginx is not installed here (.ci/run installs it)")
def test_nginx_accepts_the_load_balancer(tmp_path: Path) -> None:
    # The upstream names resolve only inside compose's network; test the same file with loopback upstreams.
    config = re.sub(r"server hub-\d:8080", "server 127.0.0.1:8080", (DEPLOY / "nginx.conf").read_text())
    (tmp_path / "nginx.conf").write_text(config)
    result = subprocess.run(
        [
            "nginx",
            "-t",
            "-c",
            str(tmp_path / "nginx.conf"),
            "-g",
            f"pid {tmp_path}/nginx.pid; error_log {tmp_path}/error.log;",
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed here")
def test_systemd_accepts_the_unit(tmp_path: Path) -> None:
    crossroads = Path(sys.executable).with_name("crossroads")
    unit = (DEPLOY / "crossroads.service").read_text().replace("/opt/crossroads/.venv/bin/crossroads", str(crossroads))
    (tmp_path / "crossroads.service").write_text(unit)
    result = subprocess.run(
        ["systemd-analyze", "verify", str(tmp_path / "crossroads.service")], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr


def test_the_compose_adapter_config_is_one_the_adapter_reads(tmp_path: Path) -> None:
    from adapters.config import read_config

    config_text = (DEPLOY / "adapters" / "tax-authority.yaml").read_text().replace("/run/secrets/", str(tmp_path) + "/")
    (tmp_path / "adapter.yaml").write_text(config_text)
    (tmp_path / "exports").symlink_to(DEPLOY / "adapters" / "exports")
    config = read_config(tmp_path / "adapter.yaml")
    assert (config.agency, config.port, list(config.categories)) == ("tax-authority", 8090, ["income"])
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    assert compose["services"]["adapter-tax"]["command"] == ["adapter", "run", "/adapters/tax-authority.yaml"]
