"""Deployment files: the compose file validates and is wired right; the Dockerfile lints clean.

No Docker engine runs on these machines, so nothing is built or started here: Debian's
docker-compose parses and validates the file without an engine, and hadolint lints the Dockerfile.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.support.paths import REPO
from tests.support.require import require_service

COMPOSE = REPO / "docker-compose.yml"
KNAS_SERVICES = ("migrate", "api", "worker")


def _tool(name: str) -> str:
    path = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
    if path is None:
        require_service(f"`{name}`", "not installed (.ci/run installs it)")
    return path


def compose(*args: str, password: str | None = "secret") -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("POSTGRES_PASSWORD", "KNAS_WORKER_DB_PASSWORD")}
    if password is not None:
        env["POSTGRES_PASSWORD"] = password
        env["KNAS_WORKER_DB_PASSWORD"] = password + "-worker"
    return subprocess.run([_tool("docker-compose"), "-f", str(COMPOSE), *args], env=env,
                          capture_output=True, text=True, cwd=REPO, timeout=60)


@pytest.fixture(scope="module")
def config() -> dict:
    result = compose("config")
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


def test_compose_config_validates():
    result = compose("config", "-q")
    assert result.returncode == 0, result.stderr


def test_compose_refuses_to_run_without_a_database_password():
    result = compose("config", "-q", password=None)
    assert result.returncode != 0 and "POSTGRES_PASSWORD" in result.stderr


def test_services_and_wiring(config):
    services = config["services"]
    assert {"postgres", "redis", "migrate", "api", "worker"} <= set(services)
    for name in ("postgres", "redis", "api"):
        assert "healthcheck" in services[name], name
    for name in KNAS_SERVICES:
        env = services[name]["environment"]
        assert "@postgres:5432/" in env["KNAS_DATABASE_URL"] and env["KNAS_DATABASE_URL"].startswith("postgresql+psycopg")
        assert env["KNAS_BROKER_URL"].startswith("redis://redis:6379")
    for name in ("api", "worker"):
        depends = services[name]["depends_on"]
        assert depends["migrate"]["condition"] == "service_completed_successfully"
        assert depends["redis"]["condition"] == "service_healthy"
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert "pgdata" in config["volumes"]
    # least privilege: workers connect as the role the migrate job creates, never as the owner
    assert services["migrate"]["command"][-2:] == ["--worker-role", "knas_worker"]
    assert services["worker"]["environment"]["KNAS_DATABASE_URL"].startswith("postgresql+psycopg://knas_worker:")
    assert services["api"]["environment"]["KNAS_DATABASE_URL"].startswith("postgresql+psycopg://knas:")
    # checkpoints and exported models: one artifact store the API and every worker share
    for name in ("api", "worker"):
        assert services[name]["environment"]["KNAS_ARTIFACT_DIR"] == "/artifacts"
        mounts = [v if isinstance(v, str) else f"{v['source']}:{v['target']}" for v in services[name]["volumes"]]
        assert any(m.startswith("artifacts:/artifacts") for m in mounts), mounts


def test_worker_reserves_gpus_and_can_scale(config):
    worker = config["services"]["worker"]
    devices = worker["deploy"]["resources"]["reservations"]["devices"]
    assert any("gpu" in d["capabilities"] and d["driver"] == "nvidia" for d in devices)
    assert "ports" not in worker and "container_name" not in worker  # scaling needs neither


@pytest.mark.parametrize("service", KNAS_SERVICES)
def test_service_commands_are_real_knas_commands(config, service):
    command = config["services"][service]["command"]
    assert command[0] == "knas"
    result = subprocess.run([sys.executable, "-m", "knas.cli.main", *command[1:2], "--help"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


def test_dockerfile_lints_clean():
    result = subprocess.run([_tool("hadolint"), "--failure-threshold", "warning", "Dockerfile"],
                            capture_output=True, text=True, cwd=REPO, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerfile_is_multistage_non_root_and_copies_every_package():
    text = (REPO / "Dockerfile").read_text()
    assert len(re.findall(r"^FROM ", text, re.M)) >= 2
    users = re.findall(r"^USER (\S+)", text, re.M)
    assert users and users[-1] not in ("root", "0")
    pyproject = (REPO / "pyproject.toml").read_text()
    packages = re.search(r"include = \[(.*?)\]", pyproject).group(1)
    for package in re.findall(r'"(\w+)\*"', packages):
        assert re.search(rf"^COPY {package} ", text, re.M), f"Dockerfile does not copy {package}/"
