"""Fixtures registered for the whole tree by tests/conftest.py: real services (tests/support/services.py)
and API servers of a test's own (tests/support/servers.py).

A test that uses a service fixture is in the `service` lane, one that uses `start_live_server` in the
`live` lane (tests/conftest.py marks them); without the service it is skipped locally and fails in CI.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterator, TypeVar

import pytest

from .require import require_service
from .servers import InProcessServer, LiveServer, clean_env
from .services import REDIS_TEST_URL, PostgresCluster, fresh_database

Server = TypeVar("Server", InProcessServer, LiveServer)


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


def _servers(make: Callable[[dict[str, str], int], Server]) -> Iterator[Callable[..., Server]]:
    """`start(KNAS_HOME=..., ...)` -> a started server of the test's own; all stopped after the test."""
    started: list[Server] = []

    def start(**env: str) -> Server:
        server = make(clean_env(**env), len(started))
        started.append(server)
        return server.start()

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def start_server() -> Iterator[Callable[..., InProcessServer]]:
    """An in-process server (`create_app` over HTTP in this process) of the test's own."""
    yield from _servers(lambda env, _i: InProcessServer(env))


@pytest.fixture
def start_live_server(tmp_path: Path) -> Iterator[Callable[..., LiveServer]]:
    """`knas serve` in a subprocess of the test's own, logging to tmp_path/server-N.log."""
    yield from _servers(lambda env, i: LiveServer(env, tmp_path / f"server-{i}.log"))
