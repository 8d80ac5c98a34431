"""The Celery app: created from settings; tasks live in worker.tasks."""
from __future__ import annotations

from importlib import import_module

from celery import Celery
from celery.signals import worker_process_init, worker_ready

from knas.settings import get_settings

from .celeryconfig import celery_config

app = Celery("knas")
app.config_from_object(celery_config(get_settings()))
app.autodiscover_tasks(["worker"], related_name="tasks", force=True)


def load_plugins() -> None:
    """Import site plug-ins (extra datasets, proxies) named in KNAS_PLUGINS."""
    for module in get_settings().plugins:
        import_module(module)


@worker_process_init.connect
def _child_start(**_kwargs) -> None:
    load_plugins()


@worker_ready.connect
def _ready(sender=None, **_kwargs) -> None:
    from . import heartbeat

    load_plugins()
    heartbeat.start(sender.hostname if sender is not None else heartbeat.worker_name())
