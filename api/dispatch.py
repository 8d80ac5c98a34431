"""How a submitted job reaches workers: Celery (the service) or a thread (the embedded default, worker/runner.py).

The API's side of the queue: it only calls `submit` and never knows which one runs the job. Torch-free,
Celery's client only: task names, routes and the broker's priority levels are the workers'
(worker/flow.py, worker/celeryconfig.py), read from there.
"""
from __future__ import annotations

import logging
from typing import Protocol

from knas.settings import Settings
from models import Store

log = logging.getLogger(__name__)


class JobQueue(Protocol):
    def submit(self, job_id: str, priority: int = 0) -> None: ...

    def close(self) -> None: ...


class CeleryQueue:
    """Sends `knas.start_job` to the broker; workers do the rest."""

    def __init__(self, settings: Settings | None = None) -> None:
        # A bare client app: send_task needs no task code, so the API never imports the pipeline.
        from celery import Celery

        from knas.settings import get_settings

        from worker.celeryconfig import celery_config

        self.app = Celery("knas-client")
        self.app.config_from_object(celery_config(settings or get_settings()))

    def submit(self, job_id: str, priority: int = 0) -> None:
        from worker.celeryconfig import broker_priority
        from worker.flow import Task

        self.app.send_task(Task.START_JOB.value, args=[job_id], priority=broker_priority(priority))

    def close(self) -> None:
        return None


def make_queue(settings: Settings, store: Store) -> JobQueue:
    """Celery when a broker is configured (the service), else the in-process runner (the embedded default)."""
    if settings.broker_url:
        return CeleryQueue(settings)
    from worker.runner import LocalQueue

    return LocalQueue(store, settings)
