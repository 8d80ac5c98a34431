"""Real worker processes for the live tests: `knas worker` subprocesses on the test Postgres + Redis.

Every process started here is stopped in the fixture's finaliser, whatever the test did: the
`knas worker` supervisor gets SIGTERM (it forwards it to its Celery children), and anything still
alive after a timeout - the supervisor or any process below it - is SIGKILLed.
"""
from __future__ import annotations

import subprocess
import sys

import pytest

from tests.worker.live_workers import REPO, WorkerProc, worker_env


@pytest.fixture
def start_worker(pg_url, redis_url, tmp_path):
    """start_worker(name, *cli_args, **env) -> WorkerProc: `knas worker --device cpu --threads 1 --name NAME`."""
    started: list[WorkerProc] = []

    def start(name: str, *args: str, **env: str) -> WorkerProc:
        log = tmp_path / f"{name}.log"
        with open(log, "w") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "knas.cli.main", "worker", "--device", "cpu", "--threads", "1",
                 "--name", name, *args],
                env=worker_env(pg_url, redis_url, tmp_path / "home", **env), cwd=REPO,
                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        worker = WorkerProc(name, proc, log, [])
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.stop(timeout=20)
