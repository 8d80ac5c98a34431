"""How a submitted job reaches workers: Celery (the service) or a thread (the embedded default).

The API only calls `submit`; it never knows which one runs the job.
"""
from __future__ import annotations

import logging
import queue
import threading
from typing import Protocol

from knas.settings import Settings
from models import Store

log = logging.getLogger(__name__)


class JobQueue(Protocol):
    def submit(self, job_id: str, priority: int = 0) -> None: ...

    def close(self) -> None: ...


def broker_priority(job_priority: int) -> int:
    """Job priority 0..9 (9 = most urgent) -> Redis transport priority (0 = consumed first)."""
    return 9 - max(0, min(9, job_priority))


class CeleryQueue:
    """Sends `knas.start_job` to the broker; workers do the rest."""

    def __init__(self, settings: Settings | None = None) -> None:
        # A bare client app: send_task needs no task code, so the API never imports the pipeline.
        from celery import Celery

        from knas.settings import get_settings

        from .celeryconfig import celery_config

        self.app = Celery("knas-client")
        self.app.config_from_object(celery_config(settings or get_settings()))

    def submit(self, job_id: str, priority: int = 0) -> None:
        from .flow import Task

        self.app.send_task(Task.START_JOB.value, args=[job_id], priority=broker_priority(priority))

    def close(self) -> None:
        return None


class LocalQueue:
    """One background thread that runs submitted jobs in turn, in this process (no broker needed)."""

    def __init__(self, store: Store, settings: Settings) -> None:
        self.store, self.settings = store, settings
        self._jobs: queue.PriorityQueue[tuple[int, int, str | None]] = queue.PriorityQueue()
        self._order = 0
        self._thread = threading.Thread(target=self._run, name="knas-local-worker", daemon=True)
        self._thread.start()

    def submit(self, job_id: str, priority: int = 0) -> None:
        self._order += 1
        self._jobs.put((-priority, self._order, job_id))

    def resume_unfinished(self) -> int:
        """Re-submit jobs a previous process left active (nothing is lost on restart)."""
        from sqlalchemy import select

        from models import ACTIVE_STATES, Job

        with self.store.session() as session:
            rows = session.execute(select(Job.id, Job.priority).where(Job.status.in_(ACTIVE_STATES))
                                   .order_by(Job.created_at)).all()
        for job_id, priority in rows:
            self.submit(job_id, priority)
        return len(rows)

    def close(self) -> None:
        self._jobs.put((-(10**9), 0, None))
        self._thread.join(timeout=5)

    def _run(self) -> None:
        from .pipeline import run_job
        from .runtime import Runtime

        runtime = Runtime.from_settings(self.settings, worker_name="local")
        while True:
            _, _, job_id = self._jobs.get()
            if job_id is None:
                return
            try:
                run_job(self.store, runtime, job_id, self.settings.chunk_size)
            except Exception:  # the job is already marked failed with the reason
                log.exception("local job %s failed", job_id)


def make_queue(settings: Settings, store: Store) -> JobQueue:
    return CeleryQueue(settings) if settings.broker_url else LocalQueue(store, settings)
