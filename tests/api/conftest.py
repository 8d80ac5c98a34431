"""Servers for the API tests.

Route tests talk to `create_app` served in this process (`InProcessServer`, tests/support/servers.py):
the embedded server (SQLite + in-process queue) is shared by the tests under tests/api and stopped
after them (while its queue's thread lives, torch in other threads of the process runs at half speed:
each thread that used torch keeps an OpenMP team), and `start_server` starts one of a test's own. Tests about the `knas serve` process itself (a kill and a restart, its
uvicorn options, what it creates and logs on start-up) start one with `start_live_server`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.support.processes import free_port
from tests.support.servers import InProcessServer, clean_env
from tests.support.specs import job_spec


@pytest.fixture(scope="package")
def embedded_home(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("embedded-home")


@pytest.fixture(scope="package")
def embedded_server(embedded_home: Path):
    server = InProcessServer(clean_env(KNAS_HOME=str(embedded_home))).start()
    yield server
    server.stop()


@pytest.fixture
def api(embedded_server: InProcessServer):
    with embedded_server.client() as client:
        yield client


@pytest.fixture
def http(embedded_server: InProcessServer):
    """A raw httpx client, for requests KnasClient would never send."""
    with embedded_server.http() as client:
        yield client


@pytest.fixture
def pg_server(pg_url: str, tmp_path: Path, start_server):
    return start_server(KNAS_HOME=str(tmp_path / "home"), KNAS_DATABASE_URL=pg_url)


@pytest.fixture
def pg_server_with_broker(pg_url: str, redis_url: str, tmp_path: Path, start_server):
    """The service as a lab runs it (API only: PostgreSQL store, Redis broker), with no worker."""
    return start_server(KNAS_HOME=str(tmp_path / "home"), KNAS_DATABASE_URL=pg_url, KNAS_BROKER_URL=redis_url)


@pytest.fixture(scope="package")
def finished_job(embedded_server: InProcessServer) -> dict[str, Any]:
    """One tiny job run to the end on the shared server (several tests read it)."""
    with embedded_server.client() as client:
        job = client.submit(job_spec(n=3, seed=7))
        return client.wait(job["id"], timeout=120, interval=0.3)


@pytest.fixture
def closed_port() -> int:
    """A loopback port nothing listens on."""
    return free_port()
