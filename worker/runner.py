"""The embedded default: a job runs in this process, on a background thread (no broker, no workers).

`run_job` drains the same messages the Celery workers exchange (worker/flow.py), here, in order;
`LocalQueue` is the API's and `knas serve`'s queue when no broker is configured. Torch is imported
by the steps themselves (the pipeline), not by this module.
"""
from __future__ import annotations

import logging
import queue
import threading
from typing import Any, Callable

from knas.settings import Settings
from models import Store

from .flow import StepContext, drain, resume
from .jobs import cancel_job, fail_job, job_status
from .presence import record
from .runtime import Runtime

log = logging.getLogger(__name__)


def run_job(store: Store, runtime: Runtime, job_id: str, chunk_size: int = 25,
            on_progress: Callable[[str, dict[str, Any]], None] | None = None) -> str:
    """Run every step of a job in this process (the embedded default): the same messages the Celery
    workers exchange (worker/flow.py), drained here in order. Returns the final status."""
    record(store, runtime.worker_name, device=runtime.device)  # in-process runs are workers too
    try:
        drain(resume(store, job_id, chunk_size), StepContext(store, runtime, chunk_size, window=None,
                                                             on_progress=on_progress))
    except KeyboardInterrupt:
        cancel_job(store, job_id)
        raise
    except Exception as error:
        fail_job(store, job_id, f"{type(error).__name__}: {error}")
        raise
    return job_status(store, job_id) or "missing"


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
        runtime = Runtime.from_settings(self.settings, worker_name="local")
        while True:
            _, _, job_id = self._jobs.get()
            if job_id is None:
                return
            try:
                run_job(self.store, runtime, job_id, self.settings.chunk_size)
            except Exception:  # the job is already marked failed with the reason
                log.exception("local job %s failed", job_id)
