"""The Celery app: created from settings; tasks live in worker.tasks, the node's lifecycle in worker.node.

Only a worker imports those two (`include`): a process that merely sends tasks by name (the API's
api.dispatch.CeleryQueue) loads neither the tasks nor the pipeline. Here is only `worker_init` (main process,
before the pool forks): import KNAS_PLUGINS, check the store's schema.
"""
from __future__ import annotations

import logging
import sys

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
    check_store(settings.effective_database_url)


def check_store(url: str) -> None:
    """Stop the node before it takes a task when the store's schema is not this knas's (`models.ensure_schema`:
    a service database is only checked; `knas db upgrade` migrates it), with one line naming what to run.

    Celery logs (and ignores) an exception a signal handler raises, so this exits itself.
    """
    from models import SchemaError, ensure_schema

    try:
        ensure_schema(url)
    except SchemaError as error:
        print(f"knas worker: {error}", file=sys.stderr, flush=True)
        raise SystemExit(3) from None
