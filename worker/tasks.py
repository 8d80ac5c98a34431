"""Celery tasks: thin wrappers that take ids and call the pipeline unchanged.

Each step enqueues the next only after its own transaction committed; a lost
message is made good by the sweep (worker/sweep.py), a redelivered one is
skipped by the step's own status guards.
"""
from __future__ import annotations

import logging
from functools import lru_cache

from celery import shared_task

from knas.settings import get_settings
from models import Job, Store

from . import pipeline
from .queue import broker_priority
from .retry import RETRY_OPTIONS

log = logging.getLogger(__name__)


@lru_cache(maxsize=1)
def store() -> Store:
    """One store (engine + pool) per worker process, created after the fork."""
    return Store(get_settings().effective_database_url)


@lru_cache(maxsize=1)
def runtime():
    from .runtime import Runtime
    from .heartbeat import worker_name

    return Runtime.from_settings(get_settings(), worker_name=worker_name())


def enqueue(name: str, args: tuple, job_priority: int = 0) -> None:
    from .celery_app import app

    app.send_task(name, args=list(args), priority=broker_priority(job_priority))


def _priority(job_id: str) -> int:
    with store().session() as session:
        job = session.get(Job, job_id)
        return job.priority if job is not None else 0


def _working_on(job_id: str | None) -> None:
    from .heartbeat import set_current_job

    set_current_job(store(), job_id)


@shared_task(name="knas.start_job", **RETRY_OPTIONS)
def start_job(job_id: str) -> int:
    chunks = pipeline.start_job(store(), job_id, get_settings().chunk_size)
    priority = _priority(job_id)
    for chunk in chunks:
        enqueue("knas.score_chunk", (job_id, chunk), priority)
    if not chunks and pipeline.job_status(store(), job_id) == "scoring":
        # nothing pending (e.g. every chunk already ran): make sure the job moves on
        if pipeline.finish_scoring(store(), job_id):
            enqueue("knas.rank", (job_id,), priority)
    return len(chunks)


@shared_task(name="knas.score_chunk", **RETRY_OPTIONS)
def score_chunk(job_id: str, candidate_ids: list[int]) -> dict:
    _working_on(job_id)
    try:
        report = pipeline.score_chunk(store(), runtime(), job_id, candidate_ids)
    finally:
        _working_on(None)
    if report.get("finished"):
        enqueue("knas.rank", (job_id,), _priority(job_id))
    return report


@shared_task(name="knas.rank", **RETRY_OPTIONS)
def rank(job_id: str) -> list[int]:
    to_train = pipeline.rank(store(), job_id)
    priority = _priority(job_id)
    for candidate_id in to_train:
        enqueue("knas.train_candidate", (job_id, candidate_id), priority)
    return to_train


@shared_task(name="knas.train_candidate", **RETRY_OPTIONS)
def train_candidate(job_id: str, candidate_id: int) -> str:
    _working_on(job_id)
    try:
        return pipeline.train_candidate(store(), runtime(), job_id, candidate_id)
    finally:
        _working_on(None)


@shared_task(name="knas.finalise", **RETRY_OPTIONS)
def finalise(job_id: str) -> bool:
    return pipeline.finalise(store(), job_id)


@shared_task(name="knas.sweep", **RETRY_OPTIONS)
def sweep() -> dict:
    from .sweep import sweep as run_sweep

    settings = get_settings()
    return run_sweep(store(), enqueue, settings.lease_seconds, settings.stall_timeout)
