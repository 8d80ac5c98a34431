"""Glue between the scorer and the store: the pipeline steps and (later) their Celery tasks."""
