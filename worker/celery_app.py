"""The Celery app: created from settings; tasks live in worker.tasks.

Only a worker imports worker.tasks (`include`): a process that merely sends tasks by name (the API's
CeleryQueue) loads neither the tasks nor the pipeline. Worker lifecycle signals are wired here:

- worker_init (main process, before the pool forks): import KNAS_PLUGINS, migrate the store;
- worker_process_init (each pool child): drop connections inherited from the parent, load plug-ins,
  import the scorer and freeze what is imported out of the garbage collector's way;
- worker_ready (main process): start the heartbeat + sweep thread (worker/heartbeat.py);
- worker_shutdown: stop it and clear the node's current job.
"""
from __future__ import annotations

import logging

from celery import Celery
from celery.signals import task_postrun, worker_init, worker_process_init, worker_ready, worker_shutdown

from knas.settings import get_settings

from .celeryconfig import celery_config

log = logging.getLogger(__name__)

app = Celery("knas", include=["worker.tasks"])
app.config_from_object(celery_config(get_settings()))


@worker_init.connect
def _on_worker_init(**_kwargs) -> None:
    from knas.plugins import load_plugins

    settings = get_settings()
    names = load_plugins(settings)
    if names:
        log.info("plug-ins loaded: %s", ", ".join(names))
    migrate_store(settings.effective_database_url)


@worker_process_init.connect
def _on_worker_process_init(**_kwargs) -> None:
    from knas.plugins import load_plugins

    from . import heartbeat, tasks

    heartbeat.forget_after_fork()
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
    from . import heartbeat

    heartbeat.start_for_worker(getattr(sender, "hostname", None) or app.conf.get("worker_name") or "worker")


@worker_shutdown.connect
def _on_worker_shutdown(**_kwargs) -> None:
    from . import heartbeat

    heartbeat.stop_for_worker()


def migrate_store(url: str) -> None:
    """Bring the schema up to date once per node; on PostgreSQL under an advisory lock, so nodes
    starting together on a fresh database do not race to create the same tables."""
    from sqlalchemy import text

    from models import upgrade
    from models.db import make_engine

    if not url.startswith("postgresql"):
        upgrade(url)
        return
    from sqlalchemy.exc import ProgrammingError

    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT pg_advisory_lock(424242)"))
            try:
                upgrade(url)
            except ProgrammingError as error:  # the least-privilege worker role may not change the schema
                raise RuntimeError(
                    "the database schema is older than this knas and this connection may not upgrade it "
                    f"({type(error.orig).__name__}); run `knas db upgrade` (then `knas db roles`) as the database "
                    "owner, then start the workers again") from None
            finally:
                connection.execute(text("SELECT pg_advisory_unlock(424242)"))
    finally:
        engine.dispose()
