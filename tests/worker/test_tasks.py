"""The Celery tasks run in-process (eagerly, no broker): what each enqueues, retries and failures."""
from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.exc import DBAPIError, OperationalError

from knas.jobspec import JobSpec
from knas.settings import Settings
from models import Job, Worker
from worker import jobs, pipeline, tasks
from worker.celeryconfig import broker_priority
from worker.retry import TransientError

SPEC = {"space": "nats-tss", "dataset": "tiny", "candidates": {"strategy": "random", "n": 5},
        "proxy": {"name": "params", "batch_size": 8}, "seed": 5, "top_k": 2, "final": {"mode": "train", "epochs": 1},
        "priority": 7}


class Sent(list):
    def __call__(self, task, args, priority=0):
        self.append((task, list(args), priority))


@pytest.fixture
def ctx(store, runtime, monkeypatch):
    settings = Settings(chunk_size=2, lease_seconds=60)
    context = tasks.Context(settings, store, runtime)
    tasks.use_context(context)
    sent = Sent()
    monkeypatch.setattr(tasks, "enqueue", sent)
    yield context, sent
    tasks.use_context(None)


def new_job(store, **changes) -> str:
    return jobs.create_job(store, JobSpec.model_validate({**SPEC, **changes}))


def test_task_names_and_queues_are_stable():
    from worker.celeryconfig import TASK_ROUTES

    names = {"knas.start_job", "knas.score_chunk", "knas.rank", "knas.train_candidate", "knas.finalise", "knas.sweep"}
    assert names <= set(tasks.app.tasks) and names == set(TASK_ROUTES)
    assert TASK_ROUTES["knas.train_candidate"]["queue"] == "train" and TASK_ROUTES["knas.score_chunk"]["queue"] == "score"
    for name in names:
        assert tasks.app.tasks[name].acks_late and tasks.app.tasks[name].reject_on_worker_lost


def test_a_job_flows_through_the_tasks_and_each_step_enqueues_the_next(ctx, store, monkeypatch):
    _, sent = ctx
    monkeypatch.setattr(pipeline, "_train", lambda *a, **k: {"valid_acc": 0.5, "test_acc": 0.4})
    job_id = new_job(store)
    assert tasks.start_job.apply(args=[job_id]).get() == 2  # KNAS_FANOUT_WINDOW chunks, not all three
    chunks = [args[1] for task, args, _ in sent]
    assert [len(c) for c in chunks] == [2, 2] and {p for _, _, p in sent} == {7}
    assert tasks.start_job.apply(args=[job_id]).get() == 0  # redelivered: no second fan-out
    assert len(sent) == 2

    sent.clear()
    first = tasks.score_chunk.apply(args=[job_id, chunks[0]]).get()
    assert first["scored"] == 2 and len(sent) == 1  # a finished chunk sends the job's next one
    task, (_, third), priority = sent[0]
    assert task == "knas.score_chunk" and len(third) == 1 and not set(third) & {*chunks[0], *chunks[1]}
    chunks.append(third)
    second = tasks.score_chunk.apply(args=[job_id, chunks[1]]).get()
    again = tasks.score_chunk.apply(args=[job_id, chunks[0]]).get()  # a redelivered chunk: nothing twice
    assert len(sent) == 1  # nothing left to hand out
    sent.clear()
    last = tasks.score_chunk.apply(args=[job_id, chunks[2]]).get()
    assert second["scored"] == 2 and again["skipped"] == 2 and last["scored"] == 1
    assert [r["finished"] for r in (first, second, again, last)] == [0, 0, 0, 1]
    assert sent == [("knas.rank", [job_id], 7)]  # only the chunk that moved the job on sends rank
    late = tasks.score_chunk.apply(args=[job_id, chunks[0]]).get()  # redelivered after the job moved on
    assert late["scored"] == 0 and not late["finished"] and len(sent) == 1

    sent.clear()
    top = tasks.rank.apply(args=[job_id]).get()
    assert sent == [("knas.train_candidate", [job_id, c], 7) for c in top] and len(top) == 2
    assert [tasks.train_candidate.apply(args=[job_id, c]).get() for c in top] == ["done", "done"]
    assert tasks.finalise.apply(args=[job_id]).get() is False  # the last training already finalised
    with store.session() as s:
        job = s.get(Job, job_id)
        assert job.status == "succeeded" and job.result["winner"] is not None


def test_enqueue_maps_job_priority_to_the_broker_and_retries_publishing(monkeypatch):
    from worker.celeryconfig import FOLLOW_UP_PUBLISH_RETRY

    calls = []
    monkeypatch.setattr(tasks.app, "send_task", lambda name, args, priority, **options: calls.append(
        (name, args, priority, options)))
    tasks.enqueue("knas.rank", ["j"], 9)
    tasks.enqueue("knas.rank", ["j"], 0)
    policy = {"retry": True, "retry_policy": FOLLOW_UP_PUBLISH_RETRY}  # kombu re-publishes across a broker blip
    assert calls == [("knas.rank", ["j"], broker_priority(9), policy), ("knas.rank", ["j"], broker_priority(0), policy)]
    assert broker_priority(9) == 0 and broker_priority(0) == 9


@pytest.mark.parametrize("error, surfaces_as", [
    (OperationalError("UPDATE candidates", {}, Exception("server closed the connection")), OperationalError),
    (DBAPIError("SELECT 1", {}, Exception("terminating connection"), connection_invalidated=True), TransientError),
])
def test_transient_errors_are_retried_by_celery_with_backoff_and_leave_the_job_alone(
        ctx, store, monkeypatch, error, surfaces_as):
    job_id = new_job(store)
    pipeline.start_job(store, job_id)
    runs, countdowns = [], []

    def flaky(*_a, **_k):
        runs.append(1)
        raise error

    retry = tasks.score_chunk.retry

    def spy(*args, **kwargs):  # what KnasTask's autoretry asks Celery for (eager retries run at once)
        countdowns.append(kwargs["countdown"])
        return retry(*args, **kwargs)

    monkeypatch.setattr(pipeline, "score_chunk", flaky)
    monkeypatch.setattr(tasks.score_chunk, "retry", spy)
    result = tasks.score_chunk.apply(args=[job_id, [1]])
    # 1 run + 15 retries, then the task fails with the error (the sweep takes over) and the job is left alone.
    assert result.failed() and isinstance(result.result, surfaces_as)
    assert len(runs) == 16 and len(countdowns) == 16
    assert jobs.job_status(store, job_id) == "scoring"
    # Full jitter: retry n waits 0..2**n s, capped at a minute, and the waits are spread, not the bare curve.
    ceilings = [min(60, 2 ** n) for n in range(16)]
    assert all(0 <= wait <= ceiling for wait, ceiling in zip(countdowns, ceilings)), countdowns
    assert countdowns != ceilings
    assert tasks.sweep.max_retries == 3  # the sweep gives up sooner: the next heartbeat sweeps again


def test_a_real_error_fails_the_job_with_the_reason_and_the_worker(ctx, store, monkeypatch):
    job_id = new_job(store)
    pipeline.start_job(store, job_id)
    seen = {}

    def broken(store_, runtime, job_id_, ids, *a):
        with store_.session() as s:  # the task says what it is working on while it runs
            seen["current"] = s.scalar(select(Worker.current_job).where(Worker.name == runtime.worker_name))
        raise ValueError("proxy returned nonsense")

    monkeypatch.setattr(pipeline, "score_chunk", broken)
    result = tasks.score_chunk.apply(args=[job_id, [1]])
    assert result.failed() and isinstance(result.result, ValueError)
    with store.session() as s:
        job = s.get(Job, job_id)
        current = s.scalar(select(Worker.current_job).where(Worker.name == "test"))
    assert job.status == "failed" and job.error == "scoring failed on worker test: ValueError: proxy returned nonsense"
    assert seen["current"] == job_id and current is None


def test_the_sweep_task_uses_the_same_enqueue(ctx, store):
    _, sent = ctx
    job_id = new_job(store)
    pipeline.start_job(store, job_id)
    from models import Candidate
    from sqlalchemy import update

    with store.session() as s:
        s.execute(update(Candidate).where(Candidate.job_id == job_id).values(status="scored", score=1.0))
    report = tasks.sweep.apply().get()
    assert report["moved_to_ranking"] == [job_id] and sent == [("knas.rank", [job_id], 7)]
