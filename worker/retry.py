"""Which task errors are worth retrying, and how: one place for the whole worker.

Transient = the database or the broker went away for a moment (restart, failover,
network blip). Everything else is a real error: the step records it and stops.
"""
from __future__ import annotations

from kombu.exceptions import OperationalError as BrokerError
from sqlalchemy.exc import DBAPIError, OperationalError

TRANSIENT: tuple[type[BaseException], ...] = (OperationalError, BrokerError, ConnectionError, TimeoutError)


def is_transient(error: BaseException) -> bool:
    if isinstance(error, DBAPIError) and error.connection_invalidated:
        return True
    return isinstance(error, TRANSIENT)


# Celery task options: exponential back-off with jitter, capped, for a long outage (~20 min).
RETRY_OPTIONS = {
    "autoretry_for": TRANSIENT,
    "retry_backoff": 2,
    "retry_backoff_max": 60,
    "retry_jitter": True,
    "max_retries": 25,
}
