"""The Celery app: created from settings; tasks live in worker.tasks, the node's lifecycle in worker.node.

Only a worker imports those two (`include`): a process that merely sends tasks by name (the API's
CeleryQueue) loads neither the tasks nor the pipeline. Here is only `worker_init` (main process,
before the pool forks): import KNAS_PLUGINS, migrate the store.
"""
from __future__ import annotations

import logging

from celery import Celery
from celery.signals import worker_init

from knas.settings import get_settings

from .celeryconfig import celery_config

log = logging.getLogger(__name__)

app = Celery("knas", include=["worker.tasks", "worker.node"])
app.config_from_object(celery_config(get_settings()))


@worker_init.connect
def _on_worker_init(**_kwargs) -> None:
    from knas.plugins import load_plugins

    settings = get_settings()
    names = load_plugins(settings)
    if names:
        log.info("plug-ins loaded: %s", ", ".join(names))
    migrate_store(settings.effective_database_url)


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
