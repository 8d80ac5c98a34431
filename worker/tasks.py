"""Celery tasks: thin wrappers that run one step of the job's flow and send what follows it.

Task and queue names, the step each task runs and the messages that follow it live in
worker/flow.py (shared with the in-process runner and the sweep); here is only the Celery side:
the process context, delivery guarantees and retries. A step's follow-up messages are sent only
after its own transaction committed.

Delivery is at-least-once (acks_late, reject_on_worker_lost): a redelivered step is skipped by the
pipeline's own status guards and conditional UPDATEs, and a lost message is made good by the sweep
(worker/sweep.py). Transient database/broker errors (the list in worker/retry.py) are retried by
Celery's own autoretry, declared on `KnasTask`; any other error fails the job with the reason,
like the in-process runner.

The pipeline (and with it the scorer and torch) is imported inside the tasks, so processes that
only send tasks (the API) never load it.
"""
from __future__ import annotations

import logging
import socket
import threading
from dataclasses import dataclass
from typing import Any, Callable

from celery import Task
from sqlalchemy import select

from knas.settings import Settings, get_settings
from models import Job, Store

from . import flow, presence
from .celery_app import app
from .celeryconfig import FOLLOW_UP_PUBLISH_RETRY, broker_priority
from .flow import Message
from .retry import TRANSIENT, retryable
from .runtime import Runtime

log = logging.getLogger(__name__)


# ---------------------------------------------------------------- per-process context

@dataclass
class Context:
    settings: Settings
    store: Store
    runtime: Runtime


_context: Context | None = None
_lock = threading.Lock()


def context(worker_name: str | None = None) -> Context:
    """This process's store and runtime, built on first use (after the fork) from settings."""
    global _context
    if _context is None:
        with _lock:
            if _context is None:
                from knas.plugins import load_plugins

                settings = get_settings()
                load_plugins(settings)
                store = Store(settings.effective_database_url, check_schema=False)  # the node checked it on start
                runtime = Runtime.from_settings(settings, worker_name=worker_name or socket.gethostname())
                _context = Context(settings, store, runtime)
    return _context


def use_context(ctx: Context | None) -> None:
    """Install a context (tests), or drop the current one (None)."""
    global _context
    _context = ctx


def forget_after_fork() -> None:
    """In a freshly forked pool child: never reuse the parent's connections."""
    global _context
    if _context is not None:
        _context.store.engine.dispose(close=False)
    _context = None


def enqueue(name: str, args: list, job_priority: int = 0) -> None:
    """Send a task by name with the job's priority (routes come from celeryconfig); kombu rides out a broker blip."""
    app.send_task(name, args=list(args), priority=broker_priority(job_priority),
                  retry=True, retry_policy=FOLLOW_UP_PUBLISH_RETRY)


def _priority(ctx: Context, job_id: str) -> int:
    with ctx.store.session() as session:
        return session.scalar(select(Job.priority).where(Job.id == job_id)) or 0


# ---------------------------------------------------------------- the common wrapper

class KnasTask(Task):
    acks_late = True  # acknowledged after it ran: a killed worker's message is delivered again
    reject_on_worker_lost = True  # ... also when the pool child died mid-task (OOM kill, segfault)
    ignore_result = True  # state lives in the store
    # A transient error (worker/retry.py) re-sends the task, same id, arguments and priority, after a random
    # 0..2**n s (Celery's full jitter: workers that lost the database together come back spread out),
    # capped at a minute; with acks_late the message is acknowledged only once the retry is published.
    # After 15 retries (~5 min of waiting on average) the task fails with the error and the sweep takes over.
    autoretry_for = TRANSIENT
    retry_backoff = True  # 1 s, doubling
    retry_backoff_max = 60
    retry_jitter = True
    max_retries = 15


def _run(task: Task, job_id: str, stage: str, step: Callable[[Context], Any], track: bool = True) -> Any:
    ctx = context(task.request.hostname)
    name = ctx.runtime.worker_name
    if track:
        presence.set_current_job(ctx.store, name, job_id, ctx.runtime.device)
    try:
        with retryable():
            return step(ctx)
    except TRANSIENT as error:  # KnasTask's autoretry re-sends the task; the job is left alone
        log.warning("%s of job %s: transient %s: %s", task.name, job_id, type(error).__name__, error)
        raise
    except Exception as error:
        log.exception("%s of job %s failed", task.name, job_id)
        from .jobs import fail_job

        try:
            fail_job(ctx.store, job_id, f"{stage} failed on worker {name}: {type(error).__name__}: {error}")
        except Exception:  # noqa: BLE001 - the store may be what failed; the sweep will fail the job later
            log.warning("could not mark job %s failed", job_id, exc_info=True)
        raise
    finally:
        if track:
            presence.clear_current_job(ctx.store, name, job_id)


# ---------------------------------------------------------------- tasks: run the step, send what follows

def _step(task: Task, message: Message, stage: str, track: bool = True) -> Any:
    """Run the message's step (worker/flow.py), then send the messages that follow it."""

    def step(ctx: Context) -> Any:
        outcome = flow.run(message, flow.StepContext(ctx.store, ctx.runtime, ctx.settings.chunk_size,
                                                     window=ctx.settings.fanout_window,
                                                     lease_seconds=ctx.settings.lease_seconds))
        after = flow.follow_up(outcome)
        if after:
            priority = _priority(ctx, message.job_id)
            for follow in after:
                enqueue(follow.task, list(follow.args), priority)
        return outcome

    return _run(task, message.job_id, stage, step, track=track)


@app.task(name=flow.Task.START_JOB.value, bind=True, base=KnasTask)
def start_job(self: Task, job_id: str) -> int:
    """queued -> scoring, then the first KNAS_FANOUT_WINDOW `score_chunk`s (each finished one sends the next)."""
    return len(_step(self, flow.Message(flow.Task.START_JOB, (job_id,)), "start", track=False).chunks)


@app.task(name=flow.Task.SCORE_CHUNK.value, bind=True, base=KnasTask)
def score_chunk(self: Task, job_id: str, candidate_ids: list[int]) -> dict[str, int]:
    """Score a chunk, then send the job's next chunk to the back of the queue (fair share), or `rank`."""
    return _step(self, flow.Message(flow.Task.SCORE_CHUNK, (job_id, candidate_ids)), "scoring").report


@app.task(name=flow.Task.RANK.value, bind=True, base=KnasTask)
def rank(self: Task, job_id: str) -> list[int]:
    """Write ranks and send one `train_candidate` per top-k candidate (on the train queue)."""
    return _step(self, flow.Message(flow.Task.RANK, (job_id,)), "ranking", track=False).to_train


@app.task(name=flow.Task.TRAIN.value, bind=True, base=KnasTask)
def train_candidate(self: Task, job_id: str, candidate_id: int) -> str:
    """Train one top-k candidate (claimed only if pending or its holder's heartbeat is stale)."""
    return _step(self, flow.Message(flow.Task.TRAIN, (job_id, candidate_id)), "training").status


@app.task(name=flow.Task.FINALISE.value, bind=True, base=KnasTask)
def finalise(self: Task, job_id: str) -> bool:
    """training -> succeeded once nothing is open (normally done by the last train_candidate)."""
    return _step(self, flow.Message(flow.Task.FINALISE, (job_id,)), "finalise", track=False).finalised


@app.task(name=flow.Task.SWEEP.value, bind=True, base=KnasTask, max_retries=3)
def sweep(self: Task) -> dict[str, Any]:
    """Run the sweep once (every worker also runs it from its heartbeat thread); a transient error retries it."""
    from .sweep import sweep_with_settings

    ctx = context(self.request.hostname)
    with retryable():
        return sweep_with_settings(ctx.store, enqueue, ctx.settings).to_dict()
