"""The fixtures over real services (tests/support/services.py), registered for the whole tree by tests/conftest.py.

A test that uses one of these is in the `service` lane (tests/conftest.py marks it); without the
service it is skipped locally and fails in CI.
"""
from __future__ import annotations

from typing import Iterator

import pytest

from .require import require_service
from .services import REDIS_TEST_URL, PostgresCluster, fresh_database


@pytest.fixture
def empty_pg_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database (no schema yet) for one test, dropped afterwards."""
    with fresh_database() as url:
        yield url


@pytest.fixture
def pg_url(empty_pg_url: str) -> str:
    """A fresh PostgreSQL database for one test at this knas's schema, dropped afterwards.

    Upgraded as a service database is, explicitly (`models.migrate`, what `knas db upgrade` runs) before
    any API, worker or store opens it: they only check its revision.
    """
    from models import migrate

    migrate(empty_pg_url)
    return empty_pg_url


@pytest.fixture
def redis_url() -> Iterator[str]:
    """The test Redis database, emptied before and after the test."""
    import redis

    client = redis.Redis.from_url(REDIS_TEST_URL)
    try:
        client.flushdb()
    except Exception as error:  # noqa: BLE001
        require_service(f"Redis at {REDIS_TEST_URL}", error)
    yield REDIS_TEST_URL
    client.flushdb()
    client.close()


@pytest.fixture
def pg_cluster() -> Iterator[PostgresCluster]:
    """A private PostgreSQL cluster (initdb in a temp dir, own port) that the test may stop and start."""
    cluster = PostgresCluster()
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.destroy()
