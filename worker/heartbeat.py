"""Worker presence: one `workers` row per Celery node, kept fresh by a daemon thread that also sweeps.

The thread runs in the node's main process (started on `worker_ready`; with the prefork pool the
tasks run in child processes, so a long task never delays a heartbeat). Every
KNAS_SWEEP_INTERVAL seconds it upserts the row (name = the Celery node name, e.g.
`gpu1@host`; hostname; device; last_seen) and runs the sweep (worker/sweep.py), so a cluster
with any live worker re-enqueues stranded work and fails stalled jobs with no beat process.
Tasks set and clear `current_job` themselves (`set_current_job` / `clear_current_job`).

Everything here is best effort: presence must never fail a task.
"""
from __future__ import annotations

import logging
import socket
import threading
from contextlib import contextmanager
from datetime import datetime
from typing import Any, Callable, Iterator

from sqlalchemy import update

from models import Store, Worker, utcnow

log = logging.getLogger(__name__)

_UNSET: Any = object()


def record(store: Store, name: str, *, hostname: str | None = None, device: str | None = None,
           current_job: str | None = _UNSET, starting: bool = False, update_device: bool = True,
           now: datetime | None = None) -> None:
    """Upsert the worker's row: insert on first sight, otherwise refresh last_seen (and what is given).

    `starting` resets started_at and current_job (a restarted node has no job yet).
    """
    now = now or utcnow()
    values: dict[str, Any] = {"last_seen": now}
    if hostname is not None:
        values["hostname"] = hostname[:128]
    if device is not None and update_device:
        values["device"] = device[:64]
    if current_job is not _UNSET:
        values["current_job"] = current_job
    if starting:
        values["started_at"] = now
        values.setdefault("current_job", None)
    insert_values = {"name": name[:128], "hostname": (hostname or socket.gethostname())[:128],
                     "device": (device or "unknown")[:64], "started_at": now, **values}
    with store.session() as session:
        dialect = session.get_bind().dialect.name
        if dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        elif dialect == "sqlite":
            from sqlalchemy.dialects.sqlite import insert
        else:  # pragma: no cover - the store supports these two
            raise RuntimeError(f"no upsert for {dialect}")
        stmt = insert(Worker).values(**insert_values)
        session.execute(stmt.on_conflict_do_update(index_elements=[Worker.name], set_=values))


def set_current_job(store: Store, name: str, job_id: str, device: str | None = None) -> None:
    try:
        record(store, name, device=device, current_job=job_id)
    except Exception:  # noqa: BLE001 - presence is best effort
        log.warning("could not record current job of %s", name, exc_info=True)


def clear_current_job(store: Store, name: str, job_id: str) -> None:
    """Clear current_job if it is still `job_id` (with prefork concurrency > 1 siblings share the row)."""
    try:
        with store.session() as session:
            session.execute(update(Worker).where(Worker.name == name, Worker.current_job == job_id)
                            .values(current_job=None, last_seen=utcnow()))
    except Exception:  # noqa: BLE001
        log.warning("could not clear current job of %s", name, exc_info=True)


class Heartbeat(threading.Thread):
    """Upsert the row, then run `on_beat` (the sweep), every `interval` seconds until stopped."""

    def __init__(self, store: Store, name: str, device: str, interval: float,
                 on_beat: Callable[[], Any] | None = None, hostname: str | None = None) -> None:
        super().__init__(name="knas-heartbeat", daemon=True)
        self.store, self.worker_name, self.device = store, name, device
        self.hostname = hostname or socket.gethostname()
        self.interval, self.on_beat = interval, on_beat
        self.beats = 0
        self._stop_event = threading.Event()

    def beat(self) -> None:
        # The device is written on start only: a task later writes the device it actually resolved.
        record(self.store, self.worker_name, hostname=self.hostname, device=self.device,
               starting=self.beats == 0, update_device=self.beats == 0)
        self.beats += 1
        if self.on_beat is not None:
            self.on_beat()

    def run(self) -> None:
        while not self._stop_event.is_set():
            try:
                self.beat()
            except Exception:  # noqa: BLE001 - a DB or broker outage: try again next round
                log.warning("heartbeat/sweep of %s failed", self.worker_name, exc_info=True)
            self._stop_event.wait(self.interval)

    def stop(self, timeout: float = 5.0) -> None:
        self._stop_event.set()
        if self.is_alive() and threading.current_thread() is not self:
            self.join(timeout)


# ---------------------------------------------------------------- Celery wiring (signals in worker/celery_app.py)

_state: dict[str, Any] = {"thread": None, "store": None}


def reported_device(settings: Any) -> str:
    """The device to show before a task ran. Never touches CUDA: the prefork parent must not initialise it."""
    return settings.device


def start_for_worker(node_name: str) -> Heartbeat:
    """Start this node's heartbeat + sweep thread (called on `worker_ready`, in the main process)."""
    from knas.settings import get_settings

    from .sweep import sweep_with_settings
    from .tasks import enqueue

    settings = get_settings()
    store = Store(settings.effective_database_url, migrate=False)
    _state["store"] = store

    def run_sweep() -> None:
        report = sweep_with_settings(store, enqueue, settings)
        if report.enqueued or report.failed or report.errors:
            log.info("sweep: %s", report.to_dict())

    thread = Heartbeat(store, node_name, reported_device(settings), settings.sweep_interval, run_sweep)
    _state["thread"] = thread
    thread.start()
    log.info("heartbeat of %s every %s s (and the sweep)", node_name, settings.sweep_interval)
    return thread


def stop_for_worker() -> None:
    thread, store = _state["thread"], _state["store"]
    if thread is not None:
        thread.stop()
        try:
            record(store, thread.worker_name, current_job=None)  # a clean stop leaves no stale current job
        except Exception:  # noqa: BLE001
            pass
    if store is not None:
        store.dispose()
    _state.update(thread=None, store=None)


def forget_after_fork() -> None:
    """In a freshly forked pool child: drop the parent's engine without closing its connections."""
    store = _state["store"]
    if store is not None:
        store.engine.dispose(close=False)
    _state.update(thread=None, store=None)


# ---------------------------------------------------------------- the API's stall watchdog

class StallWatchdog(threading.Thread):
    """Fail started jobs that made no progress for `stall_timeout` seconds, every `interval` seconds.

    Workers run the whole sweep from their heartbeat threads, but when every worker is gone nobody
    sweeps, and a job would show `scoring`/`training` for ever. The API process (always up, torch-free)
    runs this one rule too: `worker.sweep.fail_stalled`, a conditional UPDATE that is safe alongside
    any number of worker sweeps. Best effort: a database outage is logged and tried again next round.
    """

    def __init__(self, store: Store, stall_timeout: float, interval: float) -> None:
        super().__init__(name="knas-stall-watchdog", daemon=True)
        self.store, self.stall_timeout, self.interval = store, stall_timeout, interval
        self.rounds = 0
        self._stop_event = threading.Event()

    def check(self) -> dict[str, str]:
        from .sweep import fail_stalled  # torch-free: the store and worker.jobs only

        failed = fail_stalled(self.store, self.stall_timeout).failed
        self.rounds += 1
        return failed

    def run(self) -> None:
        while not self._stop_event.wait(self.interval):
            try:
                self.check()  # fail_stalled logs each job it fails, with the reason
            except Exception:  # noqa: BLE001 - the database may be down: try again next round
                log.warning("stall watchdog round failed", exc_info=True)

    def stop(self, timeout: float = 5.0) -> None:
        self._stop_event.set()
        if self.is_alive() and threading.current_thread() is not self:
            self.join(timeout)


# ---------------------------------------------------------------- a training's lease, kept between epochs

@contextmanager
def training_lease(store: Store, training_id: int, attempt: int, interval: float) -> Iterator[None]:
    """Refresh `trainings.heartbeat_at` every `interval` s while the block runs (fenced on `attempts`).

    The per-epoch heartbeat alone made an epoch longer than KNAS_LEASE_SECONDS look like a dead
    worker: the sweep reset the training, another worker took it over, the first one's result was
    discarded, and so on for ever. This thread keeps the lease alive while the process lives; it
    dies with the process (a SIGKILLed worker still loses its lease), and it never touches
    `jobs.updated_at`, so a training that hangs without finishing epochs still hits the stall timeout.
    """
    from models import repository

    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(interval):
            try:
                with store.session() as session:
                    held = repository.renew_training_lease(session, training_id, attempt)
                if not held:  # finished, or taken over: nothing left to keep alive
                    return
            except Exception:  # noqa: BLE001 - a database blip: the next beat tries again
                log.warning("could not refresh the lease of training %s", training_id, exc_info=True)

    thread = threading.Thread(target=beat, name=f"knas-training-{training_id}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=interval + 5)
