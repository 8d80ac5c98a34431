"""Fault-injection harness for tests/reliability: private servers, real processes, invariant checks.

Everything here is a real process on loopback: a private `redis-server` per test (so no other test
run, and no message left over from an earlier test, shares the broker), a private PostgreSQL
cluster where a test stops the database, `knas worker` and `knas serve` subprocesses. Faults are
signals and restarts; checks read the store. `LEDGER` collects the session's figures (faults
injected, jobs completed, rows lost, duplicates), printed at the end of the run by conftest.py.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

import httpx

from tests.support.paths import REPO  # noqa: F401  (re-exported for the tests)
from tests.support.processes import carries, kill_tree
from tests.support.servers import LiveServer
from tests.support.services import PostgresCluster, RedisServer, fresh_database  # noqa: F401  (re-exported)
from tests.support.specs import tiny_spec  # noqa: F401  (re-exported)
from tests.support.waiting import wait_for
from tests.support.workers import WorkerProc, start_worker_process, worker_env

DONE = ("succeeded", "failed", "cancelled")
ORDER = {"queued": 0, "scoring": 1, "ranking": 2, "training": 3, "succeeded": 4, "failed": 4, "cancelled": 4}

# Small clocks so lost work comes back in seconds: lease 5 s (the settings' minimum), a sweep per second.
FAST = {"KNAS_LEASE_SECONDS": "5", "KNAS_SWEEP_INTERVAL": "1", "KNAS_CHUNK_SIZE": "4",
        "KNAS_STALL_TIMEOUT": "600", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "KNAS_DEVICE": "cpu"}


# ---------------------------------------------------------------- the session's figures

@dataclass
class Ledger:
    faults: Counter = field(default_factory=Counter)  # kind -> times injected
    jobs: Counter = field(default_factory=Counter)  # final status -> jobs checked
    candidates: int = 0  # candidates the jobs asked for
    score_rows: int = 0  # candidate rows with a stored score
    lost: int = 0  # candidates with no row, or (in a succeeded job) no score
    duplicates: int = 0  # extra candidate rows for an arch, extra training rows for a candidate, repeated epochs
    trainings: int = 0
    transitions: int = 0  # job state changes observed by the watchers
    backwards: int = 0  # state changes that went backwards (must stay 0)
    http: Counter = field(default_factory=Counter)  # status class -> answers clients got while faults were injected
    fuzz: Counter = field(default_factory=Counter)  # status class -> answers to generated (schemathesis) requests
    notes: list[str] = field(default_factory=list)

    def fault(self, kind: str) -> None:
        self.faults[kind] += 1

    def as_dict(self) -> dict[str, Any]:
        return {"faults_injected": dict(self.faults), "faults_total": sum(self.faults.values()),
                "jobs": dict(self.jobs), "candidates": self.candidates, "score_rows": self.score_rows,
                "rows_lost": self.lost, "duplicates": self.duplicates, "trainings": self.trainings,
                "state_changes_observed": self.transitions, "state_changes_backwards": self.backwards,
                "http_during_faults": dict(self.http), "fuzz_requests": dict(self.fuzz), "notes": self.notes}

    def summary(self) -> str:
        d = self.as_dict()
        faults = ", ".join(f"{k} x{v}" for k, v in sorted(self.faults.items())) or "none"
        jobs = ", ".join(f"{k} {v}" for k, v in sorted(self.jobs.items())) or "none"
        http = ", ".join(f"{k}: {v}" for k, v in sorted(self.http.items())) or "none"
        fuzz = ", ".join(f"{k}: {v}" for k, v in sorted(self.fuzz.items())) or "none"
        return "\n".join([
            f"faults injected: {d['faults_total']} ({faults})",
            f"jobs checked: {sum(self.jobs.values())} ({jobs})",
            f"candidates: {self.candidates}, score rows: {self.score_rows}, trainings: {self.trainings}",
            f"rows lost: {self.lost}, duplicates: {self.duplicates}",
            f"job state changes observed: {self.transitions}, backwards: {self.backwards}",
            f"HTTP answers clients got while faults were injected: {http}",
            f"generated requests (schemathesis): {sum(self.fuzz.values())} ({fuzz})",
            *self.notes,
        ])


LEDGER = Ledger()


# ---------------------------------------------------------------- the stack

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
        from worker.dispatch import broker_priority

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


# ---------------------------------------------------------------- watchers and checks

class StateWatch(threading.Thread):
    """Reads the jobs' status and progress every `interval` s on its own connection, for the whole test.

    Records every state seen; a state that goes backwards (or leaves a final state), or a scored
    count that shrinks, is a violation. Read errors (the database is down on purpose) are counted, not fatal.
    """

    def __init__(self, db_url: str, job_ids: Iterable[str], interval: float = 0.05) -> None:
        super().__init__(name="state-watch", daemon=True)
        from models import Store

        self.store = Store(db_url, check_schema=False, pool_size=1, max_overflow=0)
        self.job_ids, self.interval = list(job_ids), interval
        self.seen: dict[str, list[str]] = {j: [] for j in self.job_ids}
        self.done_counts: dict[str, int] = {j: 0 for j in self.job_ids}
        self.violations: list[str] = []
        self.read_errors = 0
        self._halt = threading.Event()

    def add(self, job_id: str) -> None:
        self.seen.setdefault(job_id, [])
        self.done_counts.setdefault(job_id, 0)
        self.job_ids.append(job_id)

    def poll(self) -> None:
        from sqlalchemy import func, select

        from models import Candidate, Job

        with self.store.session() as s:
            states = dict(s.execute(select(Job.id, Job.status).where(Job.id.in_(list(self.job_ids)))).all())
            counts = dict(s.execute(select(Candidate.job_id, func.count()).where(
                Candidate.job_id.in_(list(self.job_ids)), Candidate.status != "pending").group_by(Candidate.job_id)).all())
        for job_id, state in states.items():
            history = self.seen[job_id]
            if history and history[-1] != state:
                before = history[-1]
                if ORDER[state] < ORDER[before] or before in DONE:
                    self.violations.append(f"job {job_id}: {before} -> {state}")
            if not history or history[-1] != state:
                history.append(state)
            count = counts.get(job_id, 0)
            if count < self.done_counts[job_id]:
                self.violations.append(f"job {job_id}: finished candidates went from {self.done_counts[job_id]} to {count}")
            self.done_counts[job_id] = max(count, self.done_counts[job_id])

    def run(self) -> None:
        while not self._halt.is_set():
            try:
                self.poll()
            except Exception:  # noqa: BLE001 - the database may be down on purpose
                self.read_errors += 1
            self._halt.wait(self.interval)

    def stop(self) -> dict[str, list[str]]:
        """Stop, take one last reading, record the figures, and fail on any backwards move."""
        self._halt.set()
        self.join(10)
        try:
            self.poll()
        except Exception:  # noqa: BLE001
            self.read_errors += 1
        self.store.dispose()
        LEDGER.transitions += sum(max(0, len(h) - 1) for h in self.seen.values())
        LEDGER.backwards += len(self.violations)
        assert not self.violations, f"state went backwards: {self.violations}; seen {self.seen}"
        return self.seen

    def __enter__(self) -> "StateWatch":
        if self.ident is None:  # not started yet (a test may start it early, then use `with`)
            self.start()
        return self

    def __exit__(self, exc_type, *_exc) -> None:
        if exc_type is None:
            self.stop()
        else:  # the test already failed: still stop the thread and the engine
            self._halt.set()
            self.join(10)
            self.store.dispose()


@dataclass
class JobCheck:
    status: str
    expected: int  # candidates the spec asked for
    rows: int  # candidate rows stored
    scored: int
    lost: int
    duplicates: int
    trainings: list[Any]
    job: Any


def check_job(store, job_id: str, *, require_all_scored: bool | None = None) -> JobCheck:
    """Count what the store holds for a job against what its spec asked for, and record it in LEDGER.

    lost = archs of the spec with no row, plus (when every candidate must be scored: a succeeded job)
    rows without a score; duplicates = extra rows per arch, extra trainings per candidate, and epochs
    recorded twice in one training.
    """
    from sqlalchemy import select

    from knas.jobspec import JobSpec
    from models import Candidate, Job, Training

    with store.session() as s:
        job = s.get(Job, job_id)
        rows = s.execute(select(Candidate.id, Candidate.arch, Candidate.status, Candidate.score, Candidate.rank)
                         .where(Candidate.job_id == job_id)).all()
        trainings = s.scalars(select(Training).where(Training.job_id == job_id)).all()
        from models.queries import progress, recount

        counted, recounted = progress(s, job_id), recount(s, job_id)
    # The progress counters are kept in the transactions that change what they count: exact after any fault.
    assert counted == recounted, f"job {job_id}: counters {counted} != recount {recounted}"
    expected = set(JobSpec.model_validate(job.spec).resolve_archs())
    archs = [r.arch for r in rows]
    stored = set(archs)
    scored = [r for r in rows if r.status == "scored" and r.score is not None]
    if require_all_scored is None:
        require_all_scored = job.status == "succeeded"
    lost = len(expected - stored) + (sum(1 for r in rows if r.status != "scored" or r.score is None)
                                     if require_all_scored else 0)
    per_candidate = Counter((t.candidate_id, t.mode) for t in trainings)  # the winner may also have a retraining
    duplicates = (len(archs) - len(stored)) + sum(c - 1 for c in per_candidate.values())
    for t in trainings:
        epochs = [e.get("epoch") for e in (t.epochs or [])]
        duplicates += len(epochs) - len(set(epochs))
    LEDGER.jobs[job.status] += 1
    LEDGER.candidates += len(expected)
    LEDGER.score_rows += len(scored)
    LEDGER.lost += lost
    LEDGER.duplicates += duplicates
    LEDGER.trainings += len(trainings)
    return JobCheck(job.status, len(expected), len(rows), len(scored), lost, duplicates, list(trainings), job)


def assert_complete(store, job_id: str, context: Callable[[], str] = lambda: "") -> JobCheck:
    """The job succeeded; every candidate has exactly one row with a score; ranks 1..n; every top-k trained once."""
    check = check_job(store, job_id)
    job = check.job
    assert check.status == "succeeded", f"job {job_id} is {check.status}: {job.error}\n{context()}"
    assert check.lost == 0 and check.duplicates == 0, (check, context())
    assert check.rows == check.expected == check.scored
    from sqlalchemy import select

    from models import Candidate

    with store.session() as s:
        ranks = sorted(s.scalars(select(Candidate.rank).where(Candidate.job_id == job_id)))
    assert ranks == list(range(1, check.expected + 1))
    spec = job.spec
    if spec["final"]["mode"] == "train":
        assert len(check.trainings) == spec["top_k"]
        for t in check.trainings:
            assert t.status == "done", (t.status, t.error)
            assert [e["epoch"] for e in t.epochs] == list(range(1, spec["final"]["epochs"] + 1))
        assert job.result["winner"]["arch"] in {e["arch"] for e in job.result["top_k"]}
    return check


class Poller(threading.Thread):
    """A client polling GET /v1/jobs/{id} like `knas status --watch`, tolerating a server that is restarting.

    Records every answer; `refused` counts connection failures (no server listening), which a
    restarting API may cause; any HTTP status other than 200 is kept for the test to judge.
    """

    def __init__(self, url: str, token: str, job_id: str, interval: float = 0.1) -> None:
        super().__init__(name="poller", daemon=True)
        self.url, self.token, self.job_id, self.interval = url, token, job_id, interval
        self.answers: list[tuple[int, dict[str, Any] | str]] = []
        self.refused = 0
        self._halt = threading.Event()

    def run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=10, headers={"Authorization": f"Bearer {self.token}"}) as http:
            while not self._halt.is_set():
                try:
                    response = http.get(f"/v1/jobs/{self.job_id}")
                except httpx.TransportError:
                    self.refused += 1
                else:
                    try:
                        body: Any = response.json()
                    except ValueError:
                        body = response.text
                    self.answers.append((response.status_code, body))
                    LEDGER.http[f"{response.status_code // 100}xx"] += 1
                    if response.status_code == 200 and body.get("status") in DONE:
                        return
                self._halt.wait(self.interval)

    def stop(self) -> None:
        self._halt.set()
        self.join(15)


def write_summary(path: str | None) -> None:
    if path:
        Path(path).write_text(json.dumps(LEDGER.as_dict(), indent=2) + "\n")
