"""The retry policy: which errors are transient, the back-off curve, in-process and Celery retries."""
from __future__ import annotations

import random
from types import SimpleNamespace

import pytest
from kombu.exceptions import OperationalError as BrokerError
from redis.exceptions import ConnectionError as RedisConnectionError
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError, ProgrammingError

from worker.retry import CAP_SECONDS, backoff, call_with_retry, is_transient, retry_task


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


def test_backoff_grows_exponentially_with_jitter_and_a_cap():
    rng = random.Random(0)
    for attempt in range(12):
        step = min(CAP_SECONDS, 2 ** attempt)
        delays = [backoff(attempt, rng=rng) for _ in range(200)]
        assert all(step / 2 <= d <= step for d in delays)  # never immediate, never above the step
        assert max(delays) - min(delays) > step / 4  # jittered: workers failing together spread out
    assert backoff(100, rng=rng) <= CAP_SECONDS
    assert backoff(-3, rng=rng) <= 1.0


def test_call_with_retry_retries_transient_errors_then_succeeds():
    calls, sleeps = [], []

    def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise BrokerError("connection refused")
        return "sent"

    assert call_with_retry(flaky, attempts=5, sleep=sleeps.append, rng=random.Random(1)) == "sent"
    assert len(calls) == 3 and len(sleeps) == 2 and sleeps[0] < sleeps[1] + 0.5


def test_call_with_retry_gives_up_and_never_retries_real_errors():
    sleeps = []
    with pytest.raises(BrokerError):
        call_with_retry(lambda: (_ for _ in ()).throw(BrokerError("down")), attempts=3, sleep=sleeps.append)
    assert len(sleeps) == 2
    calls = []

    def broken():
        calls.append(1)
        raise ValueError("a bug")

    with pytest.raises(ValueError):
        call_with_retry(broken, attempts=5, sleep=sleeps.append)
    assert len(calls) == 1


class FakeTask:
    name = "knas.score_chunk"

    def __init__(self, retries):
        self.request = SimpleNamespace(retries=retries)
        self.sent = []

    def retry(self, exc, countdown, max_retries):
        self.sent.append((countdown, max_retries))
        return RuntimeError("Retry")  # Celery returns/raises its Retry exception; retry_task raises it


def test_retry_task_resends_with_backoff_until_out_of_retries():
    task = FakeTask(retries=3)
    with pytest.raises(RuntimeError, match="Retry"):
        retry_task(task, BrokerError("down"), max_retries=5, rng=random.Random(0))
    (countdown, max_retries), = task.sent
    assert 4 <= countdown <= 8 and max_retries == 5
    spent = FakeTask(retries=5)
    with pytest.raises(BrokerError):
        retry_task(spent, BrokerError("down"), max_retries=5)
    assert spent.sent == []
