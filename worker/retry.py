"""Which errors are transient: the one part of the worker's retries that is ours (Celery and kombu retry).

Transient = the database or the broker went away for a moment (restart, fail-over, network blip,
a Postgres deadlock/serialisation victim, SQLite's "database is locked"). A task that hits one is
re-sent by Celery's own autoretry (`autoretry_for=TRANSIENT` with back-off and full jitter on
`worker.tasks.KnasTask`); a follow-up message is re-published by kombu's publish retry
(`worker.celeryconfig.FOLLOW_UP_PUBLISH_RETRY`). Everything else is a real error: the step
records it and stops.

A class list cannot say "a `DBAPIError` whose connection was invalidated" (psycopg reports a
dropped connection under several classes), so `retryable()` re-raises such an error as
`TransientError`, which the list names: that rule lives here and nowhere else.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from kombu.exceptions import OperationalError as BrokerOperationalError
from sqlalchemy.exc import DBAPIError, InterfaceError
from sqlalchemy.exc import OperationalError as DatabaseOperationalError


class TransientError(Exception):
    """A transient error no class in TRANSIENT names (a DBAPIError on an invalidated connection), re-raised
    so that Celery's `autoretry_for` sees it; the original is its `__cause__`."""


TRANSIENT: tuple[type[BaseException], ...] = (
    DatabaseOperationalError,  # lost connection, server restarting, deadlock victim, "database is locked"
    InterfaceError,  # connection already closed
    BrokerOperationalError,  # kombu: the broker connection failed
    ConnectionError,  # socket-level: refused, reset
    TimeoutError,
    TransientError,  # see retryable()
)
try:  # redis-py's errors subclass RedisError, not the builtins: name them explicitly
    from redis.exceptions import ConnectionError as _RedisConnectionError
    from redis.exceptions import TimeoutError as _RedisTimeoutError

    TRANSIENT += (_RedisConnectionError, _RedisTimeoutError)
except ImportError:  # pragma: no cover - redis is installed with celery[redis]
    pass


def is_transient(error: BaseException) -> bool:
    """True for errors worth retrying: the database or broker was briefly unreachable."""
    if isinstance(error, DBAPIError) and error.connection_invalidated:
        return True
    return isinstance(error, TRANSIENT)


@contextmanager
def retryable() -> Iterator[None]:
    """Let every transient error out as an instance of a TRANSIENT class (see the module's docstring)."""
    try:
        yield
    except DBAPIError as error:
        if is_transient(error) and not isinstance(error, TRANSIENT):
            raise TransientError(f"{type(error).__name__}: {error}") from error
        raise
