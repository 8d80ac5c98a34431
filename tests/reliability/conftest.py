"""Fixtures for the fault-injection suite: a service stack per test, torn down whatever the test did.

Needs PostgreSQL on 127.0.0.1:5432 (the `pg_url` fixture, tests/support/fixtures.py), and the `redis-server`,
`initdb`, `pg_ctl` and `postgres` binaries (private servers are started from them: tests/support/services.py).
In CI (CI=true) anything missing is a failure, never a skip. The session's figures are printed at the end of
the run (and written as JSON to $KNAS_RELIABILITY_SUMMARY when that is set).
"""
from __future__ import annotations

import os
import uuid

import pytest

from tests.reliability.ledger import LEDGER, write_summary
from tests.reliability.stack import Stack
from tests.support.require import require_binary
from tests.support.services import fresh_database


@pytest.fixture(scope="session", autouse=True)
def _binaries():
    """Fail fast (in CI) when a binary the suite starts is missing, before any test spends time."""
    for name in ("redis-server", "initdb", "pg_ctl", "postgres"):
        require_binary(name)


@pytest.fixture
def stack(pg_url, tmp_path):
    """make(**env) -> Stack on this test's fresh PostgreSQL database, with a private Redis."""
    made: list[Stack] = []

    def make(db_url: str | None = None, **env: str) -> Stack:
        s = Stack(db_url or pg_url, tmp_path / f"stack{len(made)}", **env)
        made.append(s)
        return s

    yield make
    for s in made:
        s.close()


@pytest.fixture(scope="module")
def module_stack(tmp_path_factory):
    """make(**env) -> Stack shared by a module's tests (its own database and Redis), torn down after them."""
    made: list[Stack] = []
    with fresh_database(prefix="knas_rel") as url:
        def make(**env: str) -> Stack:
            s = Stack(url, tmp_path_factory.mktemp("module-stack"), **env)
            made.append(s)
            return s

        try:
            yield make
        finally:
            for s in made:
                s.close()


@pytest.fixture
def unique():
    return lambda prefix: f"{prefix}-{uuid.uuid4().hex[:8]}"


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if not (LEDGER.faults or LEDGER.jobs or LEDGER.http or LEDGER.fuzz):
        return
    terminalreporter.section("reliability figures (tests/reliability)")
    for line in LEDGER.summary().splitlines():
        terminalreporter.write_line(line)
    write_summary(os.environ.get("KNAS_RELIABILITY_SUMMARY"))
