"""Fault-injection harness for tests/reliability: private servers, real processes, invariant checks.

Everything here is a real process on loopback: a private `redis-server` per test (so no other test
run, and no message left over from an earlier test, shares the broker), a private PostgreSQL
cluster where a test stops the database, `knas worker` and `knas serve` subprocesses. Faults are
signals and restarts; checks read the store. `LEDGER` collects the session's figures (faults
injected, jobs completed, rows lost, duplicates), printed at the end of the run by conftest.py.
"""
from __future__ import annotations

import glob
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import httpx
import pytest

from tests.processes import free_port, process_alive
from tests.worker.live_workers import WorkerProc, descendants, worker_env  # the live tests' worker helpers

REPO = Path(__file__).resolve().parents[2]

IN_CI = bool(os.environ.get("CI"))
DONE = ("succeeded", "failed", "cancelled")
ORDER = {"queued": 0, "scoring": 1, "ranking": 2, "training": 3, "succeeded": 4, "failed": 4, "cancelled": 4}

# Small clocks so lost work comes back in seconds: lease 5 s (the settings' minimum), a sweep per second.
FAST = {"KNAS_LEASE_SECONDS": "5", "KNAS_SWEEP_INTERVAL": "1", "KNAS_CHUNK_SIZE": "4",
        "KNAS_STALL_TIMEOUT": "600", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "KNAS_DEVICE": "cpu"}


def missing(what: str) -> None:
    """A binary or service the suite needs is not there: a failure in CI, a skip on a laptop."""
    message = f"{what} is required by tests/reliability but missing"
    if IN_CI:
        pytest.fail(f"CI: {message}")
    pytest.skip(message)


def find_binary(name: str) -> str:
    """`name` on PATH, else PostgreSQL's versioned bin folders (the newest); a failure in CI if absent."""
    found = shutil.which(name)
    if found is None:
        candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"),
                            key=lambda p: [int(x) for x in Path(p).parts[-3].split(".") if x.isdigit()])
        found = candidates[-1] if candidates else None
    if found is None:
        missing(f"the `{name}` binary")
    return found


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.05,
             context: Callable[[], str] = lambda: "") -> Any:
    """Poll `predicate` until it returns something truthy; AssertionError naming `what` after `timeout` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}\n{context()}")
        time.sleep(interval)


def _environ(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/environ").read_bytes()
    except OSError:
        return b""


def kill_tree(pid: int, extra: Iterable[int] = (), marker: str | None = None) -> list[int]:
    """SIGKILL `pid` and every process below it (collected first, so none is orphaned and missed).

    `extra`: pids seen below it earlier (a child may have been re-parented since); each is killed only
    if still alive and, with `marker`, only if its environment holds `marker` (this stack's private
    broker URL), so a reused pid of someone else's process is never hit.
    """
    earlier = [p for p in set(extra) if process_alive(p) and (marker is None or marker.encode() in _environ(p))]
    pids = sorted(set(descendants(pid)) | set(earlier)) + [pid]
    for p in pids:
        try:
            os.kill(p, signal.SIGKILL)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + 10
    while any(process_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.02)
    return pids


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


# ---------------------------------------------------------------- databases on the shared PostgreSQL

PG_ADMIN_URL = os.environ.get("KNAS_TEST_PG_ADMIN", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


@contextmanager
def fresh_database(prefix: str = "knas_rel") -> Iterator[str]:
    """A new, empty database on the test PostgreSQL (tests/conftest.py's `pg_url`, for wider scopes)."""
    import uuid

    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as c:
            c.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as error:  # noqa: BLE001
        admin.dispose()
        missing(f"PostgreSQL at {PG_ADMIN_URL} ({error})")
    try:
        yield make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


# ---------------------------------------------------------------- private Redis

class RedisServer:
    """A private `redis-server` on a free loopback port, without persistence: a restart loses everything."""

    def __init__(self, workdir: Path) -> None:
        self.binary = find_binary("redis-server")
        self.workdir, self.port = workdir, free_port()
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self):
        import redis

        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=2, socket_connect_timeout=2)

    def start(self) -> "RedisServer":
        with open(self.workdir / "redis.log", "a") as log:
            self.process = subprocess.Popen(
                [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                 "--dir", str(self.workdir), "--protected-mode", "no", "--loglevel", "warning"],
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

        def up() -> bool:
            if self.process.poll() is not None:
                raise AssertionError(f"redis-server exited: {(self.workdir / 'redis.log').read_text()[-2000:]}")
            try:
                with self.client() as c:
                    return bool(c.ping())
            except Exception:  # noqa: BLE001 - not listening yet
                return False

        wait_for(up, 20, f"redis-server on port {self.port}")
        return self

    def kill(self) -> None:
        """SIGKILL: queued and unacknowledged messages are gone with it (no persistence)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()

    def backlog(self) -> int:
        """Messages waiting in the knas queues plus unacknowledged ones (0 = the broker is drained)."""
        with self.client() as c:
            keys = [k for pattern in ("score", "score:*", "train", "train:*") for k in c.keys(pattern)]
            waiting = sum(c.llen(k) for k in keys if c.type(k) == b"list")
            return waiting + c.hlen("unacked")


# ---------------------------------------------------------------- private PostgreSQL

class PostgresCluster:
    """initdb into a temp dir, on its own port, as the `postgres` user when we are root (initdb refuses root)."""

    def __init__(self) -> None:
        self.initdb, self.pg_ctl = find_binary("initdb"), find_binary("pg_ctl")
        find_binary("postgres")
        self.root = Path(tempfile.mkdtemp(prefix="knas-pg-"))
        self.data, self.log = self.root / "data", self.root / "postgres.log"
        self.port = free_port()
        self.as_root = os.geteuid() == 0
        if self.as_root:
            import pwd

            try:
                user = pwd.getpwnam("postgres")
            except KeyError:
                missing("a `postgres` system user (initdb refuses to run as root)")
            os.chown(self.root, user.pw_uid, user.pw_gid)
            self.root.chmod(0o700)
        self._run([self.initdb, "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"],
                  timeout=120)

    def _run(self, argv: list[str], timeout: float = 60, check: bool = True) -> subprocess.CompletedProcess:
        if self.as_root:
            argv = [find_binary("runuser"), "-u", "postgres", "--", *argv]
        result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
        if check and result.returncode != 0:
            log = self.log.read_text()[-3000:] if self.log.exists() else ""
            raise AssertionError(f"{' '.join(argv)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}\n{log}")
        return result

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def start(self) -> "PostgresCluster":
        options = (f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.root} -c fsync=off "
                   "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200")
        self._run([self.pg_ctl, "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60", "-o", options, "start"],
                  timeout=90)
        return self

    def stop(self, mode: str = "fast") -> None:
        """`fast`: clients are disconnected, the server shuts down cleanly; `immediate`: like a crash."""
        self._run([self.pg_ctl, "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop"], timeout=90, check=False)

    def running(self) -> bool:
        return self._run([self.pg_ctl, "-D", str(self.data), "status"], check=False).returncode == 0

    def create_database(self, name: str) -> str:
        from sqlalchemy import create_engine, text

        engine = create_engine(self.url(), isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as c:
                c.execute(text(f'CREATE DATABASE "{name}"'))
        finally:
            engine.dispose()
        return self.url(name)

    def destroy(self) -> None:
        if self.data.exists():
            self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)


# ---------------------------------------------------------------- processes

class ApiServer:
    """`knas serve` as an operator runs it in the service (KNAS_DATABASE_URL + KNAS_BROKER_URL); same port on restart."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.env, self.log_path, self.port = env, log_path, free_port()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def start(self, timeout: float = 60) -> "ApiServer":
        with self.log_path.open("a") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "knas.cli.main", "serve", "--port", str(self.port), "--log-level", "info"],
                env=self.env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

        def healthy() -> bool:
            if self.process.poll() is not None:
                raise AssertionError(f"knas serve exited with {self.process.returncode}:\n{self.log[-4000:]}")
            try:
                return httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(healthy, timeout, "knas serve to answer /healthz", interval=0.1, context=lambda: self.log[-3000:])
        return self

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            kill_tree(self.process.pid)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()


class Stack:
    """One test's service: a database, a private broker, workers and API servers, all torn down in `close`."""

    def __init__(self, db_url: str, tmp_path: Path, **env: str) -> None:
        from models import Store, migrate

        self.db_url, self.tmp = db_url, tmp_path
        self.extra = {**FAST, **env}
        self.workers: list[WorkerProc] = []
        self.apis: list[ApiServer] = []
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
        log = self.tmp / f"worker-{name}-{len(self.workers)}.log"
        with open(log, "a") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "knas.cli.main", "worker", "--device", "cpu", "--threads", "1",
                 "--name", name, *args],
                env=self.env(**env), cwd=REPO, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        worker = WorkerProc(name, proc, log, [])
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
                if process_alive(pid) and self.redis.url.encode() in _environ(pid):
                    os.kill(pid, signal.SIGCONT if resume else signal.SIGSTOP)

    def logs(self) -> str:
        parts = [f"--- worker {w.name} ({w.log.name})\n{w.output()[-3000:]}" for w in self.workers]
        parts += [f"--- api {a.port}\n{a.log[-3000:]}" for a in self.apis]
        return "\n".join(parts)

    # ------------------------------------------------------------ API

    def start_api(self, **env: str) -> ApiServer:
        full = {k: v for k, v in self.env(**env).items() if k != "KNAS_PLUGINS"}  # the API never imports torch
        api = ApiServer(full, self.tmp / f"api-{len(self.apis)}.log")
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
                    if process_alive(pid) and self.redis.url.encode() in _environ(pid):
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


def tiny_spec(n: int, *, seed: int, proxy: str = "ensemble", probe: int = 16, top_k: int = 2,
              epochs: int | None = None, priority: int = 5) -> dict[str, Any]:
    """A job on the test-only `tiny` dataset (3x8x8 images): ensemble scoring costs ~0.25 s a candidate,
    an epoch of training ~0.1-0.3 s, so a fault can be aimed at a stage and the job still ends in seconds."""
    final = {"mode": "train", "epochs": epochs} if epochs else {"mode": "none"}
    return {"space": "nats-tss", "dataset": "tiny", "candidates": {"strategy": "random", "n": n},
            "proxy": {"name": proxy, "batch_size": probe}, "seed": seed, "top_k": top_k, "final": final,
            "priority": priority}


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
