"""A Celery worker node's lifecycle, wired to Celery's signals.

- worker_process_init (each pool child): drop connections inherited from the parent, load plug-ins,
  import the scorer and freeze what is imported out of the garbage collector's way;
- worker_ready (main process): start the heartbeat + sweep thread (worker/presence.py);
- worker_shutdown: stop it and clear the node's current job.

Imported by the worker only (worker/celery_app.py's `include`), never by a process that merely
sends tasks; `worker_init` (plug-ins, the schema check: before anything is imported) stays in
worker/celery_app.py.
"""
from __future__ import annotations

import logging
from typing import Any

from celery.signals import task_postrun, worker_process_init, worker_ready, worker_shutdown

from knas.plugins import load_plugins
from knas.settings import get_settings
from models import Store

from . import tasks
from .celery_app import app
from .presence import Heartbeat, record
from .sweep import sweep_with_settings
from .tasks import enqueue

log = logging.getLogger(__name__)


# ---------------------------------------------------------------- the heartbeat + sweep thread of the main process

_state: dict[str, Any] = {"thread": None, "store": None}


def reported_device(settings: Any) -> str:
    """The device to show before a task ran. Never touches CUDA: the prefork parent must not initialise it."""
    return settings.device


def start_for_worker(node_name: str) -> Heartbeat:
    """Start this node's heartbeat + sweep thread (called on `worker_ready`, in the main process)."""
    settings = get_settings()
    store = Store(settings.effective_database_url, check_schema=False)
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


# ---------------------------------------------------------------- signals

@worker_process_init.connect
def _on_worker_process_init(**_kwargs) -> None:
    forget_after_fork()
    tasks.forget_after_fork()
    load_plugins(get_settings())
    _freeze_long_lived()
    task_postrun.connect(_after_first_task, weak=False)  # pool children only, not processes that run tasks eagerly


def _freeze_long_lived() -> None:
    """Move what lives as long as the process into the garbage collector's permanent generation.

    A pool child runs many tasks; without this every full collection walks torch's, Celery's and
    SQLAlchemy's objects, and building a net (thousands of small allocations) sets them off: building
    a nats-tss net took ~20 ms in a process with the worker's imports against ~10 ms frozen
    (bench/service.py's queue + store figure is the service's time per candidate minus the scorer's).
    Done once at start (after importing what the first task would) and once after the first task
    (its store engine, runtime and probe batches).
    """
    import gc

    from . import pipeline  # noqa: F401  (imports the scorer and torch, as the first task would)

    gc.collect()
    gc.freeze()


def _after_first_task(**_kwargs) -> None:
    task_postrun.disconnect(_after_first_task)  # once: the signal itself is the "not yet" state
    _freeze_long_lived()


@worker_ready.connect
def _on_worker_ready(sender=None, **_kwargs) -> None:
    start_for_worker(getattr(sender, "hostname", None) or app.conf.get("worker_name") or "worker")


@worker_shutdown.connect
def _on_worker_shutdown(**_kwargs) -> None:
    stop_for_worker()
