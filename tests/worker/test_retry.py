"""Which errors are transient (Celery retries them: tests/worker/test_tasks.py checks the task's policy)."""
from __future__ import annotations

import pytest
from kombu.exceptions import OperationalError as BrokerError
from redis.exceptions import ConnectionError as RedisConnectionError
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError, ProgrammingError

from worker.retry import TRANSIENT, TransientError, is_transient, retryable


def db_error(cls, invalidated=False):
    return cls("SELECT 1", {}, Exception("boom"), connection_invalidated=invalidated)


@pytest.mark.parametrize("error", [
    db_error(OperationalError), db_error(DBAPIError, invalidated=True), BrokerError("broker down"),
    RedisConnectionError("reset"), ConnectionRefusedError(), TimeoutError(),
])
def test_database_and_broker_outages_are_transient(error):
    assert is_transient(error)


@pytest.mark.parametrize("error", [
    db_error(IntegrityError), db_error(ProgrammingError), db_error(DBAPIError), ValueError("bad spec"),
    FileNotFoundError("no data"), RuntimeError("CUDA out of memory"),
])
def test_real_errors_are_not_retried(error):
    assert not is_transient(error)


def test_retryable_lets_an_invalidated_connection_out_as_a_transient_class():
    error = db_error(DBAPIError, invalidated=True)  # no TRANSIENT class names it: Celery's autoretry_for could not
    with pytest.raises(TransientError) as raised:
        with retryable():
            raise error
    assert isinstance(raised.value, TRANSIENT) and raised.value.__cause__ is error
    assert "DBAPIError" in str(raised.value)


@pytest.mark.parametrize("error", [db_error(OperationalError), db_error(DBAPIError), db_error(IntegrityError),
                                   BrokerError("down"), ValueError("bad spec")])
def test_retryable_leaves_every_other_error_as_it_is(error):
    with pytest.raises(type(error)) as raised:
        with retryable():
            raise error
    assert raised.value is error
