"""Fixtures for the whole tree: a fresh embedded store per test, a CPU runtime; the lanes (markers).

The fixtures over real PostgreSQL and Redis (pg_url, empty_pg_url, redis_url, pg_cluster) come from
tests/support/fixtures.py; the helpers every test may import live in tests/support/ (docs/testing.md).
"""
from __future__ import annotations

from pathlib import Path

import pytest

import tests.plugins.tiny_dataset  # noqa: F401  (the test-only "tiny" dataset; workers load it through KNAS_PLUGINS)
from tests.support.paths import REPO

pytest_plugins = ["tests.support.fixtures"]


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


# ---------------------------------------------------------------- lanes (markers)

# A test's lane follows from what it uses, so no test has to remember to mark itself:
# `service` needs PostgreSQL or Redis, `live` starts a `knas serve` or `knas worker` process (an
# in-process server, tests/support/servers.py, is not one), `browser` drives Chromium, `slow` runs
# whole searches (every CLI and bench test runs one in a subprocess; other files and tests mark
# themselves). `pytest -m "not live and not service and not browser and not slow"` is the fast lane
# (README.md, docs/testing.md).
_LANE_FIXTURES = {
    "service": {"pg_url", "empty_pg_url", "redis_url", "pg_cluster", "stack", "module_stack"},
    "live": {"start_live_server", "start_worker"},
    "browser": {"chromium", "open_browser"},
    "slow": {"finished_job", "trained_job"},  # a job run to the end on the in-process server (tests/api)
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
