"""One test's service as real processes: a database, a private broker, `knas worker` nodes and `knas serve`.

A private `redis-server` per stack (tests/support/services.py), so no other test run, and no message left
over from an earlier test, shares the broker; workers and API servers are subprocesses
(tests/support/workers.py, tests/support/servers.py). Faults are signals (`kill_worker`, `pause_workers`,
`redis.kill()`, `api.kill()`) and restarts; `close` tears everything down, whatever the test did.
"""
from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

from tests.reliability.ledger import LEDGER
from tests.support.processes import carries, kill_tree
from tests.support.servers import LiveServer
from tests.support.services import RedisServer
from tests.support.waiting import wait_for
from tests.support.workers import DONE, WorkerProc, start_worker_process, worker_env

# Small clocks so lost work comes back in seconds: lease 5 s (the settings' minimum), a sweep per second.
FAST = {"KNAS_LEASE_SECONDS": "5", "KNAS_SWEEP_INTERVAL": "1", "KNAS_CHUNK_SIZE": "4",
        "KNAS_STALL_TIMEOUT": "600", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "KNAS_DEVICE": "cpu"}


class Stack:
    """One test's service: a database, a private broker, workers and API servers, all torn down in `close`."""

    def __init__(self, db_url: str, tmp_path: Path, **env: str) -> None:
        from models import Store, migrate

        self.db_url, self.tmp = db_url, tmp_path
        self.extra = {**FAST, **env}
        self.workers: list[WorkerProc] = []
        self.apis: list[LiveServer] = []
        migrate(db_url)  # `knas db upgrade`, as a deployment runs it before any API or worker starts (they only check)
        self.store = Store(db_url)
        self.redis = RedisServer(tmp_path / "redis")
        try:
            self.redis.start()
        except BaseException:
            self.redis.kill()
            self.store.dispose()
            raise

    def env(self, **extra: str) -> dict[str, str]:
        return worker_env(self.db_url, self.redis.url, self.tmp / "home", **{**self.extra, **extra})

    # ------------------------------------------------------------ workers

    def start_worker(self, name: str, *args: str, **env: str) -> WorkerProc:
        worker = start_worker_process(name, *args, env=self.env(**env),
                                      log=self.tmp / f"worker-{name}-{len(self.workers)}.log")
        self.workers.append(worker)
        return worker

    def wait_ready(self, *workers: WorkerProc, timeout: float = 90) -> None:
        """Until each worker's heartbeat thread ran after this start (so its node consumes the queues)."""
        from sqlalchemy import select

        from models import Worker

        started = {w.name: w.proc for w in workers}

        def ready() -> bool:
            for w in workers:
                if w.proc.poll() is not None:
                    raise AssertionError(f"worker {w.name} exited with {w.proc.returncode}:\n{w.output()[-4000:]}")
            logs_ready = all(" ready." in w.output() for w in workers)  # each start has its own log file
            with self.store.session() as s:
                rows = {n.split("@")[0] for n in s.scalars(select(Worker.name))}
            return logs_ready and set(started) <= rows

        wait_for(ready, timeout, f"workers {sorted(started)} to be ready", interval=0.1, context=self.logs)
        for w in workers:
            w.remember_children()

    def kill_worker(self, worker: WorkerProc, fault: str) -> None:
        """SIGKILL the node: supervisor, Celery main process and pool children at once (a machine dying)."""
        worker.remember_children()
        kill_tree(worker.proc.pid, worker.known, marker=self.redis.url)
        worker.proc.wait(timeout=10)
        LEDGER.fault(fault)

    def pause_workers(self, resume: bool = False) -> None:
        """SIGSTOP (or SIGCONT) every live worker's processes: no task runs and no sweep happens meanwhile."""
        for worker in self.workers:
            if worker.proc.poll() is not None:
                continue
            worker.remember_children()
            for pid in worker.known:
                if carries(pid, self.redis.url):
                    os.kill(pid, signal.SIGCONT if resume else signal.SIGSTOP)

    def logs(self) -> str:
        parts = [f"--- worker {w.name} ({w.log.name})\n{w.output()[-3000:]}" for w in self.workers]
        parts += [f"--- api {a.port}\n{a.log[-3000:]}" for a in self.apis]
        return "\n".join(parts)

    # ------------------------------------------------------------ API

    def start_api(self, **env: str) -> LiveServer:
        """`knas serve` as an operator runs it in the service (KNAS_DATABASE_URL + KNAS_BROKER_URL); same port on restart."""
        full = {k: v for k, v in self.env(**env).items() if k != "KNAS_PLUGINS"}  # the API never imports torch
        api = LiveServer(full, self.tmp / f"api-{len(self.apis)}.log", log_level="info")
        self.apis.append(api)
        return api.start()

    def add_user(self, name: str, **options: Any) -> str:
        from models.users import add_user

        return add_user(self.store, name, **options)

    # ------------------------------------------------------------ jobs

    def create_job(self, spec: dict[str, Any], submit: bool = True, owner: str | None = None) -> str:
        """Store a job as the API does and send `knas.start_job` (the test-only `tiny` dataset cannot go over HTTP)."""
        from knas.jobspec import JobSpec
        from worker import jobs

        parsed = JobSpec.model_validate(spec)
        job_id = jobs.create_job(self.store, parsed, owner=owner)
        if submit:
            self.send("knas.start_job", [job_id], parsed.priority)
        return job_id

    def send(self, task: str, args: list, job_priority: int = 5) -> None:
        """Send a task by name exactly as the API's CeleryQueue does (a fresh client app each time)."""
        from celery import Celery

        from knas.settings import Settings
        from worker.celeryconfig import celery_config
        from worker.celeryconfig import broker_priority

        app = Celery("knas-test-client")
        app.config_from_object(celery_config(Settings(broker_url=self.redis.url)))
        try:
            app.send_task(task, args=args, priority=broker_priority(job_priority))
        finally:
            app.close()

    def status(self, job_id: str) -> str | None:
        from worker.jobs import job_status

        return job_status(self.store, job_id)

    def progress(self, job_id: str) -> dict[str, int]:
        from sqlalchemy import func, select

        from models import Candidate

        with self.store.session() as s:
            rows = s.execute(select(Candidate.status, func.count()).where(Candidate.job_id == job_id)
                             .group_by(Candidate.status)).all()
        return {"pending": 0, "scored": 0, "failed": 0, **{k: v for k, v in rows}}

    def wait_done(self, job_id: str, timeout: float) -> str:
        return wait_for(lambda: (s := self.status(job_id)) in DONE and s, timeout, f"job {job_id} to end",
                        interval=0.1, context=lambda: f"status {self.status(job_id)}\n{self.logs()}")

    def wait_quiet(self, job_id: str, timeout: float = 30) -> None:
        """Until the broker holds no message and no worker row names the job: nothing left that could act on it."""
        from sqlalchemy import select

        from models import Worker

        def idle() -> bool:
            with self.store.session() as s:
                busy = s.scalars(select(Worker.name).where(Worker.current_job == job_id)).all()
            alive = [w for w in self.workers if w.proc.poll() is None]
            return not busy and self.redis.backlog() == 0 and bool(alive)

        def quiet() -> bool:  # twice, 0.3 s apart: a message between the queue and the unacked set is not missed
            if not idle():
                return False
            time.sleep(0.3)
            return idle()

        wait_for(quiet, timeout, "the broker to drain and the workers to go idle", interval=0.1, context=self.logs)

    def close(self) -> None:
        for api in self.apis:
            api.stop()
        for worker in self.workers:  # SIGTERM to every node at once (warm shutdowns in parallel) ...
            worker.remember_children()
            if worker.proc.poll() is None:
                worker.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 15
        for worker in self.workers:  # ... then SIGKILL whatever is still there, children included
            try:
                worker.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:  # still alive (not reaped): its pid is still its own
                kill_tree(worker.proc.pid, worker.known, marker=self.redis.url)
                worker.proc.wait(timeout=10)
            else:  # reaped: never touch its pid again; only processes that carry this stack's broker URL
                for pid in worker.known:
                    if carries(pid, self.redis.url):
                        os.kill(pid, signal.SIGKILL)
        self.store.dispose()
        self.redis.stop()
