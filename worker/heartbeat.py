"""Worker presence: a `workers` row per worker process, refreshed by a daemon thread.

The same thread runs the sweep, so a cluster with any live worker re-enqueues
stranded work and fails stalled jobs without a separate beat process.
"""
from __future__ import annotations

import logging
import os
import socket
import threading
from typing import Any

from sqlalchemy import select

from models import Store, Worker, utcnow

log = logging.getLogger(__name__)
_state: dict[str, Any] = {"name": None}


def worker_name() -> str:
    return _state["name"] or f"{os.environ.get('KNAS_WORKER_NAME') or 'worker'}@{socket.gethostname()}"


def _upsert(store: Store, name: str, device: str, **values: Any) -> None:
    with store.session() as session:
        row = session.scalar(select(Worker).where(Worker.name == name))
        if row is None:
            row = Worker(name=name, hostname=socket.gethostname(), device=device)
            session.add(row)
        row.last_seen = utcnow()
        for key, value in values.items():
            setattr(row, key, value)


def set_current_job(store: Store, job_id: str | None) -> None:
    from knas.settings import get_settings

    try:
        _upsert(store, worker_name(), get_settings().resolved_device(), current_job=job_id)
    except Exception:  # presence is best effort: never fail a task over it
        log.warning("could not record current job", exc_info=True)


def start(name: str) -> threading.Thread:
    """Start the heartbeat + sweep thread of this worker process."""
    from knas.settings import get_settings

    from .sweep import sweep
    from .tasks import enqueue, store

    _state["name"] = name
    settings = get_settings()
    stop = threading.Event()

    def beat() -> None:
        while not stop.is_set():
            try:
                _upsert(store(), name, settings.resolved_device())
                sweep(store(), enqueue, settings.lease_seconds, settings.stall_timeout)
            except Exception:  # a DB or broker outage: try again next round
                log.warning("heartbeat/sweep failed", exc_info=True)
            stop.wait(settings.sweep_interval)

    thread = threading.Thread(target=beat, name="knas-heartbeat", daemon=True)
    thread.stop = stop  # type: ignore[attr-defined]
    thread.start()
    return thread
