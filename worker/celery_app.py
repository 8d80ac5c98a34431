"""The Celery app: created from settings; tasks live in worker.tasks."""
from __future__ import annotations

from celery import Celery

from knas.settings import get_settings

from .celeryconfig import celery_config

app = Celery("knas")
app.config_from_object(celery_config(get_settings()))
app.autodiscover_tasks(["worker"], related_name="tasks", force=True)
