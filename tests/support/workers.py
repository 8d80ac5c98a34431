"""`knas worker` subprocesses on a test database and broker, stopped whatever the test did.

Workers load the test-only `tiny` dataset by its dotted name (KNAS_PLUGINS=tests.plugins.tiny_dataset);
they run from the repository root with it on PYTHONPATH, so `tests.` is importable in every pool process.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from .paths import REPO
from .processes import descendants, process_alive
from .waiting import wait_for

TINY_PLUGIN = "tests.plugins.tiny_dataset"


def worker_env(pg_url: str, redis_url: str, home: Path, **extra: str) -> dict[str, str]:
    """This environment without any KNAS_ setting, plus a worker's: the store, the broker, the tiny plug-in."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KNAS_")}
    env.update(
        KNAS_HOME=str(home), KNAS_DATABASE_URL=pg_url, KNAS_BROKER_URL=redis_url, KNAS_PLUGINS=TINY_PLUGIN,
        KNAS_CHUNK_SIZE="2", KNAS_SWEEP_INTERVAL="1",
        PYTHONPATH=os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p),
    )
    env.update(extra)
    return env


@dataclass
class WorkerProc:
    """One `knas worker` node: the supervisor process, its log, and the pids seen below it."""

    name: str
    proc: subprocess.Popen
    log: Path
    known: list[int] = field(default_factory=list)

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def remember_children(self) -> None:
        self.known = sorted(set(self.known) | set(descendants(self.proc.pid)))

    def stop(self, timeout: float = 30) -> int:
        """SIGTERM the supervisor (a warm shutdown of its workers); SIGKILL whatever is left after `timeout`."""
        self.remember_children()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
        deadline = time.time() + 10
        for pid in self.known:
            while process_alive(pid) and time.time() < deadline:
                time.sleep(0.1)
            if process_alive(pid):
                os.kill(pid, signal.SIGKILL)
        return self.proc.returncode


def start_worker_process(name: str, *args: str, env: dict[str, str], log: Path) -> WorkerProc:
    """`knas worker --device cpu --threads 1 --name NAME ARGS` in a session of its own, output appended to `log`."""
    with open(log, "a") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "knas.cli.main", "worker", "--device", "cpu", "--threads", "1", "--name", name,
             *args],
            env=env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    return WorkerProc(name, proc, log)


def worker_logs(workers: Iterable[WorkerProc], tail: int = 3000) -> str:
    return "\n".join(f"--- {w.name}\n{w.output()[-tail:]}" for w in workers)


def wait_for_rows(store: Any, names: set[str], timeout: float = 90, procs: Iterable[WorkerProc] = ()) -> dict:
    """Wait until every named node has a `workers` row; returns {short name: row}. A node that exits fails at once."""
    from sqlalchemy import select

    from models import Worker

    procs = list(procs)

    def reported() -> dict | None:
        with store.session() as session:
            rows = {w.name.split("@")[0]: w for w in session.scalars(select(Worker))}
        if names <= set(rows):
            return rows
        if any(p.proc.poll() is not None for p in procs):
            raise AssertionError(f"a worker exited before {sorted(names - set(rows))} reported\n{worker_logs(procs)}")
        return None

    rows = wait_for(reported, timeout, f"workers {sorted(names)} to report", interval=0.3,
                    context=lambda: worker_logs(procs))
    for p in procs:
        p.remember_children()
    return rows


DONE = ("succeeded", "failed", "cancelled")


def submit_job(job_id: str, priority: int, env: dict[str, str]) -> None:
    """Send a stored job to the workers exactly as the API does (api.dispatch.CeleryQueue), from a fresh process."""
    code = "import sys; from api.dispatch import CeleryQueue; CeleryQueue().submit(sys.argv[1], int(sys.argv[2]))"
    subprocess.run([sys.executable, "-c", code, job_id, str(priority)], env=env, cwd=REPO, check=True, timeout=60)


def wait_jobs_done(store: Any, job_ids: list[str], timeout: float, workers: Iterable[WorkerProc] = (),
                   interval: float = 0.3) -> dict[str, str]:
    """Until every job is in a final state; returns {job id: status}. The workers' logs say why, on a timeout."""
    from worker.jobs import job_status

    workers = list(workers)
    states: dict[str, str | None] = {}

    def done() -> dict[str, str] | None:
        states.update({j: job_status(store, j) for j in job_ids})
        return dict(states) if all(s in DONE for s in states.values()) else None  # type: ignore[arg-type]

    return wait_for(done, timeout, "jobs to end", interval=interval,
                    context=lambda: f"states {states}\n{worker_logs(workers, 4000)}")
