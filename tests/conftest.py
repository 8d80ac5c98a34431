"""Shared fixtures: a fresh embedded store per test, a CPU runtime, the shared data folder."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

import tests.plugins.tiny_dataset  # noqa: F401  (the test-only "tiny" dataset; workers load it through KNAS_PLUGINS)

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'knas.db'}"


@pytest.fixture
def store(sqlite_url: str):
    from models import Store

    s = Store(sqlite_url)
    yield s
    s.dispose()


@pytest.fixture
def runtime():
    from worker.runtime import Runtime

    return Runtime(data_dir=None, benchmark_dir=None, device="cpu", worker_name="test")


# ---------------------------------------------------------------- real services

PG_ADMIN_URL = os.environ.get("KNAS_TEST_PG_ADMIN", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
REDIS_TEST_URL = os.environ.get("KNAS_TEST_REDIS", "redis://127.0.0.1:6379/15")


def _service_missing(what: str, error: Exception):
    if os.environ.get("CI"):
        pytest.fail(f"CI: {what} is required but unreachable: {error}")
    pytest.skip(f"{what} unreachable: {error}")


@pytest.fixture
def pg_url(empty_pg_url):
    """A fresh PostgreSQL database for one test at this knas's schema, dropped afterwards.

    Upgraded as a service database is, explicitly (`models.migrate`, what `knas db upgrade` runs) before
    any API, worker or store opens it: they only check its revision.
    """
    from models import migrate

    migrate(empty_pg_url)
    return empty_pg_url


@pytest.fixture
def empty_pg_url():
    """A fresh, empty PostgreSQL database (no schema yet) for one test, dropped afterwards."""
    import uuid

    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = f"knas_test_{uuid.uuid4().hex[:12]}"
    try:
        admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as c:
            c.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as error:  # noqa: BLE001
        _service_missing("PostgreSQL", error)
    url = make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    yield url
    with admin.connect() as c:
        c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture
def redis_url():
    """The test Redis database, emptied before and after the test."""
    import redis

    client = redis.Redis.from_url(REDIS_TEST_URL)
    try:
        client.flushdb()
    except Exception as error:  # noqa: BLE001
        _service_missing("Redis", error)
    yield REDIS_TEST_URL
    client.flushdb()
    client.close()


# ---------------------------------------------------------------- lanes (markers)

# A test's lane follows from what it uses, so no test has to remember to mark itself:
# `service` needs PostgreSQL or Redis, `live` starts a server or worker process, `browser` drives
# Chromium, `slow` runs whole searches (every CLI and bench test runs one in a subprocess; other
# files mark themselves). `pytest -m "not live and not service and not browser and not slow"` is
# the fast lane (README.md).
_LANE_FIXTURES = {
    "service": {"pg_url", "empty_pg_url", "redis_url", "pg_cluster", "stack", "module_stack"},
    "live": {"embedded_server", "dashboard_server", "start_server", "pg_server", "pg_server_with_broker",
             "start_worker", "finished_job", "api", "http"},
    "browser": {"chromium", "open_browser"},
}
_LANE_FOLDERS = {"reliability": ("service", "live", "slow"), "deploy": ("live",), "cli": ("slow",), "bench": ("slow",)}


def pytest_collection_modifyitems(config, items):
    for item in items:
        lanes = {lane for lane, names in _LANE_FIXTURES.items() if names & set(item.fixturenames)}
        params = getattr(getattr(item, "callspec", None), "params", {})
        if any(value in ("postgres", "postgresql") for value in params.values()):  # getfixturevalue("pg_url")
            lanes.add("service")
        folder = Path(str(item.fspath)).relative_to(REPO / "tests").parts[0]
        lanes.update(_LANE_FOLDERS.get(folder, ()))
        for lane in sorted(lanes):
            item.add_marker(getattr(pytest.mark, lane))
