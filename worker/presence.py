"""Worker presence: one `workers` row per worker, kept fresh by a daemon thread that also sweeps.

A Celery node runs the thread in its main process (started on `worker_ready`, worker/node.py; with
the prefork pool the tasks run in child processes, so a long task never delays a heartbeat). Every
KNAS_SWEEP_INTERVAL seconds it upserts the row (name = the Celery node name, e.g. `gpu1@host`;
hostname; device; last_seen, by the database's clock: models/clock.py) and runs the sweep (worker/sweep.py), so a cluster with any live
worker re-enqueues stranded work and fails stalled jobs with no beat process. Tasks set and clear
`current_job` themselves (`set_current_job` / `clear_current_job`); the in-process runner records
itself as a worker too.

Everything here is best effort: presence must never fail a task.
"""
from __future__ import annotations

import logging
import socket
import threading
from typing import Any, Callable

from sqlalchemy import update

from models import Store, Worker
from models.base import upsert
from models.clock import db_now

log = logging.getLogger(__name__)

_UNSET: Any = object()


def record(store: Store, name: str, *, hostname: str | None = None, device: str | None = None,
           current_job: str | None = _UNSET, starting: bool = False, update_device: bool = True) -> None:
    """Upsert the worker's row: insert on first sight, otherwise refresh last_seen (and what is given).

    `starting` resets started_at and current_job (a restarted node has no job yet).
    """
    values: dict[str, Any] = {"last_seen": db_now()}
    if hostname is not None:
        values["hostname"] = hostname[:128]
    if device is not None and update_device:
        values["device"] = device[:64]
    if current_job is not _UNSET:
        values["current_job"] = current_job
    if starting:
        values["started_at"] = db_now()
        values.setdefault("current_job", None)
    insert_values = {"name": name[:128], "hostname": (hostname or socket.gethostname())[:128],
                     "device": (device or "unknown")[:64], "started_at": db_now(), **values}
    with store.session() as session:
        session.execute(upsert(session, Worker).values(**insert_values)
                        .on_conflict_do_update(index_elements=[Worker.name], set_=values))


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
                            .values(current_job=None, last_seen=db_now()))
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
