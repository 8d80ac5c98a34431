"""Celery configuration, derived from knas Settings (the only source of settings)."""
from __future__ import annotations

from kombu import Queue

from knas.settings import Settings

from .flow import ROUTES, Task
from .flow import Queue as KnasQueue

# Task name -> queue, from worker/flow.py (where names are declared once); unknown queues are not created.
TASK_ROUTES = {task.value: {"queue": queue.value} for task, queue in ROUTES.items()}
QUEUES = tuple(q.value for q in KnasQueue)

# kombu's publish retry for a worker's follow-up messages (worker.tasks.enqueue): reconnect and re-publish
# after 0.5, 1.5, 2.5, 3.5 s (~8 s in all) before the step's error goes to the task's own autoretry.
# The API keeps Celery's default policy (about a second), so a POST during a broker outage answers 503 soon.
FOLLOW_UP_PUBLISH_RETRY = {"max_retries": 4, "interval_start": 0.5, "interval_step": 1.0, "interval_max": 4.0}


def broker_priority(job_priority: int) -> int:
    """Job priority 0..9 (9 = most urgent) -> Redis transport priority (0 = consumed first)."""
    return 9 - max(0, min(9, job_priority))


def celery_config(settings: Settings) -> dict:
    return {
        "broker_url": settings.broker_url or "memory://",
        "task_ignore_result": True,  # state lives in the store, not in a result backend
        "task_acks_late": True,  # a task is acknowledged only after it ran: a killed worker's task is redelivered
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,  # long tasks: never hoard messages another worker could run
        "task_queues": [Queue(name) for name in QUEUES],
        "task_create_missing_queues": False,
        "task_routes": TASK_ROUTES,
        "task_default_queue": "score",
        "task_serializer": "json",
        "accept_content": ["json"],
        "broker_connection_retry_on_startup": True,
        "broker_transport_options": {
            "visibility_timeout": settings.visibility_timeout,
            "queue_order_strategy": "priority",
            "priority_steps": list(range(10)),
            "sep": ":",
        },
        "task_default_priority": 5,
        "worker_hijack_root_logger": False,
        # Workers sweep from their heartbeat thread; a `celery beat` is optional and safe alongside.
        "beat_schedule": {"knas-sweep": {"task": Task.SWEEP.value, "schedule": float(settings.sweep_interval)}},
    }
