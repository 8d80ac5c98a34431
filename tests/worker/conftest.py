"""Real worker processes for the live tests: `knas worker` subprocesses on the test Postgres + Redis.

Every process started here is stopped in the fixture's finaliser, whatever the test did: the
`knas worker` supervisor gets SIGTERM (it forwards it to its Celery children), and anything still
alive after a timeout - the supervisor or any process below it - is SIGKILLed.
"""
from __future__ import annotations

import pytest

from tests.support.workers import WorkerProc, start_worker_process, worker_env


@pytest.fixture
def start_worker(pg_url, redis_url, tmp_path):
    """start_worker(name, *cli_args, **env) -> WorkerProc: `knas worker --device cpu --threads 1 --name NAME`."""
    started: list[WorkerProc] = []

    def start(name: str, *args: str, **env: str) -> WorkerProc:
        worker = start_worker_process(name, *args, env=worker_env(pg_url, redis_url, tmp_path / "home", **env),
                                      log=tmp_path / f"worker-{name}-{len(started)}.log")
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop(timeout=20)
