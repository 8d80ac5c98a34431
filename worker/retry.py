"""The worker's one retry policy: which errors are transient, and how long to wait between tries.

Transient = the database or the broker went away for a moment (restart, fail-over, network blip,
a Postgres deadlock/serialisation victim, SQLite's "database is locked"). Those are retried with
exponential back-off and jitter, so a fleet of workers that lost the database at the same moment
does not come back in lock-step. Everything else is a real error: the step records it and stops.
"""
from __future__ import annotations

import logging
import random
import time
from typing import Any, Callable, NoReturn, TypeVar

from kombu.exceptions import OperationalError as BrokerOperationalError
from sqlalchemy.exc import DBAPIError, InterfaceError
from sqlalchemy.exc import OperationalError as DatabaseOperationalError

log = logging.getLogger(__name__)
T = TypeVar("T")

TRANSIENT: tuple[type[BaseException], ...] = (
    DatabaseOperationalError,  # lost connection, server restarting, deadlock victim, "database is locked"
    InterfaceError,  # connection already closed
    BrokerOperationalError,  # kombu: the broker connection failed
    ConnectionError,  # socket-level: refused, reset
    TimeoutError,
)
try:  # redis-py's errors subclass RedisError, not the builtins: name them explicitly
    from redis.exceptions import ConnectionError as _RedisConnectionError
    from redis.exceptions import TimeoutError as _RedisTimeoutError

    TRANSIENT += (_RedisConnectionError, _RedisTimeoutError)
except ImportError:  # pragma: no cover - redis is installed with celery[redis]
    pass

BASE_SECONDS = 1.0  # first retry after 0.5-1 s
CAP_SECONDS = 60.0  # no single wait longer than a minute
MAX_RETRIES = 15  # ~10 minutes of retrying in all: rides out a database fail-over; the sweep covers longer


def is_transient(error: BaseException) -> bool:
    """True for errors worth retrying: the database or broker was briefly unreachable."""
    if isinstance(error, DBAPIError) and error.connection_invalidated:
        return True
    return isinstance(error, TRANSIENT)


def backoff(attempt: int, base: float = BASE_SECONDS, cap: float = CAP_SECONDS,
            rng: random.Random | None = None) -> float:
    """Seconds to wait before retry number `attempt` (0-based): exponential, capped, "equal jitter".

    Half of the step is fixed (so a retry never comes back immediately) and half is random (so
    workers that failed together spread out).
    """
    step = min(cap, base * 2 ** max(0, attempt))
    return step / 2 + (rng or random).uniform(0, step / 2)


def call_with_retry(fn: Callable[[], T], attempts: int = 5, base: float = 0.5, cap: float = 10.0,
                    sleep: Callable[[float], Any] = time.sleep, rng: random.Random | None = None) -> T:
    """Call `fn`, retrying transient errors in-process (for short things: sending a message, a heartbeat)."""
    for attempt in range(attempts):
        try:
            return fn()
        except Exception as error:
            if not is_transient(error) or attempt == attempts - 1:
                raise
            delay = backoff(attempt, base, cap, rng)
            log.warning("transient error (%s: %s); retry %d/%d in %.1f s",
                        type(error).__name__, error, attempt + 1, attempts - 1, delay)
            sleep(delay)
    raise AssertionError("unreachable")  # pragma: no cover


def retry_task(task: Any, error: BaseException, max_retries: int = MAX_RETRIES,
               rng: random.Random | None = None) -> NoReturn:
    """Re-send a Celery task after a transient error, with back-off; re-raise `error` once out of retries.

    `task.retry` publishes a new message with the same arguments and priority and raises `Retry`;
    with acks_late the current message is acknowledged only after that, so nothing is lost in between.
    """
    retries = task.request.retries or 0
    if retries >= max_retries:
        log.error("giving up on %s after %d retries: %s", task.name, retries, error)
        raise error
    raise task.retry(exc=error, countdown=backoff(retries, rng=rng), max_retries=max_retries)
