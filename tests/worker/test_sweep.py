"""The sweep's rules, without Celery, on SQLite and on PostgreSQL.

Every clock the sweep reads is the database's, so time passes by ageing the store's lease clocks
(tests/clocks.py `age`) instead of sleeping; what the sweep would send is captured by a recording
`enqueue`.
"""
from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select, update

from knas.jobspec import JobSpec
from tests.support.clocks import age, skew_clock
from models import Candidate, Job, Store, Training, Worker, utcnow
from models.clock import db_now
from worker import jobs, pipeline
from worker.sweep import fail_stalled, requeue_scoring, reset_stale_trainings, requeue_stranded, sweep

LEASE, STALL, CHUNK = 60, 3600, 2
SPEC = {"space": "nats-tss", "dataset": "tiny", "candidates": {"strategy": "random", "n": 6},
        "proxy": {"name": "mgm", "batch_size": 8}, "seed": 3, "top_k": 2, "final": {"mode": "train", "epochs": 1},
        "priority": 7}


@pytest.fixture(params=["sqlite", "postgres"])
def db(request):
    url = request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url")
    store = Store(url)
    yield store
    store.dispose()


class Sent(list):
    """A recording enqueue: (task, args, job priority)."""

    def __call__(self, task, args, priority):
        self.append((task, list(args), priority))

    def tasks(self):
        return [task for task, _, _ in self]


def run(db, after: float = 0, sent=None):
    """Sweep once `after` more seconds have passed."""
    age(db, after)
    sent = Sent() if sent is None else sent
    report = sweep(db, sent, lease_seconds=LEASE, stall_timeout=STALL, chunk_size=CHUNK)
    return sent, report


def new_job(db, **changes) -> str:
    return jobs.create_job(db, JobSpec.model_validate({**SPEC, **changes}))


def candidate_ids(db, job_id, status=None) -> list[int]:
    query = select(Candidate.id).where(Candidate.job_id == job_id).order_by(Candidate.id)
    if status:
        query = query.where(Candidate.status == status)
    with db.session() as s:
        return list(s.scalars(query))


def store_scores(db, job_id, ids, worker="w1@host") -> None:
    """What score_chunk does per candidate, without computing anything: store a score, touch the job."""
    with db.session() as s:
        for i in ids:
            s.execute(update(Candidate).where(Candidate.id == i, Candidate.status == "pending")
                      .values(status="scored", score=float(i), scores={"mgm": float(i)}, worker=worker,
                              scored_at=utcnow()))
        s.execute(update(Job).where(Job.id == job_id).values(updated_at=db_now()))


def to_training(db, job_id) -> list[int]:
    pipeline.start_job(db, job_id)
    store_scores(db, job_id, candidate_ids(db, job_id))
    assert pipeline.finish_scoring(db, job_id)
    return pipeline.rank(db, job_id)


def job(db, job_id) -> Job:
    with db.session() as s:
        return s.get(Job, job_id)


# ---------------------------------------------------------------- rule 1: scoring leases

def test_a_scoring_job_making_progress_is_left_alone(db):
    job_id = new_job(db)
    pipeline.start_job(db, job_id)
    store_scores(db, job_id, candidate_ids(db, job_id)[:2])
    for after in (0, LEASE / 2):
        sent, report = run(db, after)
        assert sent == [] and report.failed == {}


def test_pending_candidates_of_an_idle_scoring_job_are_re_enqueued_once_per_lease(db):
    job_id = new_job(db)
    pipeline.start_job(db, job_id)
    store_scores(db, job_id, candidate_ids(db, job_id)[:2])
    pending = candidate_ids(db, job_id, "pending")
    progress_clock = job(db, job_id).updated_at

    sent, _ = run(db, LEASE + 1)
    assert sent == [("knas.score_chunk", [job_id, pending[i:i + CHUNK]], 7) for i in range(0, len(pending), CHUNK)]
    assert run(db, 1)[0] == []  # another worker's sweep in the same lease: nothing twice
    assert run(db, LEASE + 1)[0].tasks() == ["knas.score_chunk"] * 2  # still idle a lease later
    after = job(db, job_id)
    assert after.updated_at == progress_clock - timedelta(seconds=2 * LEASE + 3)  # a sweep is not progress
    assert after.swept_at is not None


def test_a_windowed_job_whose_chunks_were_lost_gets_a_window_of_chunks_again(db):
    job_id = new_job(db, candidates={"strategy": "random", "n": 7})
    first = pipeline.start_job(db, job_id, chunk_size=CHUNK, window=2)  # two chunks sent, then lost
    assert len(first) == 2 and pipeline.next_chunk(db, job_id, CHUNK)  # a third went out too
    store_scores(db, job_id, first[0])
    pending = candidate_ids(db, job_id, "pending")

    age(db, LEASE + 1)
    sent = requeue_scoring(db, Sent(), LEASE, CHUNK, window=2).enqueued
    assert sent == [("knas.score_chunk", [job_id, pending[i:i + CHUNK]]) for i in (0, CHUNK)]
    # ... and the rest is handed out one chunk per finished chunk, never twice
    rest = pipeline.next_chunk(db, job_id, 100)
    assert rest == pending[2 * CHUNK:] and pipeline.next_chunk(db, job_id, 100) == []


def test_a_scoring_job_with_nothing_pending_moves_to_ranking_exactly_once(db):
    job_id = new_job(db)
    pipeline.start_job(db, job_id)
    store_scores(db, job_id, candidate_ids(db, job_id))  # the last chunk died before finish_scoring
    sent, report = run(db)
    assert sent == [("knas.rank", [job_id], 7)] and report.moved_to_ranking == [job_id]
    assert job(db, job_id).status == "ranking"
    assert run(db)[0] == []
    age(db, LEASE + 1)
    assert requeue_scoring(db, Sent(), LEASE, CHUNK).enqueued == []


# ---------------------------------------------------------------- rule 2: training heartbeats

def claim(db, candidate_id, worker="w2@host", heartbeat=None) -> None:
    with db.session() as s:
        s.execute(update(Training).where(Training.candidate_id == candidate_id)
                  .values(status="running", worker=worker, attempts=Training.attempts + 1,
                          heartbeat_at=heartbeat or db_now()))


def training(db, candidate_id) -> Training:
    with db.session() as s:
        return s.scalar(select(Training).where(Training.candidate_id == candidate_id))


def test_a_running_training_with_a_stale_heartbeat_goes_back_to_pending_and_is_re_enqueued(db):
    job_id = new_job(db)
    first, second = to_training(db, job_id)
    claim(db, first)
    claim(db, second)
    assert run(db, LEASE / 2)[0] == []  # heartbeats are fresh
    age(db, LEASE / 2 + 1)
    with db.session() as s:  # `second` keeps beating; `first`'s worker died
        s.execute(update(Training).where(Training.candidate_id == second).values(heartbeat_at=db_now()))
    sent, report = run(db)
    assert sent == [("knas.train_candidate", [job_id, first], 7)]
    assert report.reset_trainings == [training(db, first).id]
    assert training(db, first).status == "pending" and training(db, second).status == "running"
    assert reset_stale_trainings(db, Sent(), LEASE).enqueued == []  # done once


def test_training_claims_never_overlap_and_a_stale_holder_is_fenced_out(db, monkeypatch):
    """pipeline.train_candidate: claim when pending or stale only; the loser's writes are discarded."""
    from worker.runtime import Runtime

    job_id = new_job(db)
    candidate_id = to_training(db, job_id)[0]
    a, b = Runtime(device="cpu", worker_name="a@host"), Runtime(device="cpu", worker_name="b@host")
    trained_by = []

    def fake_train(store, runtime, spec, job_id_, training_id, attempt, arch, seed, on_progress, mode="train"):
        trained_by.append(runtime.worker_name)
        if runtime is a:  # while `a` trains, its heartbeat goes stale and `b` takes over and finishes
            assert pipeline.train_candidate(db, b, job_id, candidate_id, lease_seconds=LEASE) == "running"
            with db.session() as s:
                s.execute(update(Training).where(Training.id == training_id)
                          .values(heartbeat_at=utcnow() - timedelta(seconds=LEASE + 1)))
            assert pipeline.train_candidate(db, b, job_id, candidate_id, lease_seconds=LEASE) == "done"
            return {"valid_acc": 0.1, "test_acc": 0.1}
        return {"valid_acc": 0.9, "test_acc": 0.8}

    monkeypatch.setattr(pipeline, "_train", fake_train)
    assert pipeline.train_candidate(db, a, job_id, candidate_id, lease_seconds=LEASE) == "done"
    assert trained_by == ["a@host", "b@host"]
    row = training(db, candidate_id)
    assert (row.status, row.worker, row.attempts, row.valid_acc) == ("done", "b@host", 2, 0.9)
    assert pipeline.train_candidate(db, a, job_id, candidate_id, lease_seconds=LEASE) == "done"  # no third run
    assert trained_by == ["a@host", "b@host"]


# ---------------------------------------------------------------- rule 3: lost start/rank/train/finalise

def test_a_queued_job_nobody_started_gets_start_job_again_and_is_never_failed_for_waiting(db):
    job_id = new_job(db)
    assert run(db, LEASE / 2)[0] == []
    assert run(db, LEASE / 2 + 1)[0] == [("knas.start_job", [job_id], 7)]
    assert run(db, 1)[0] == []
    sent, report = run(db, STALL * 10)
    assert sent == [("knas.start_job", [job_id], 7)] and report.failed == {}
    assert job(db, job_id).status == "queued"


def test_an_idle_ranking_job_gets_rank_again(db):
    job_id = new_job(db)
    pipeline.start_job(db, job_id)
    store_scores(db, job_id, candidate_ids(db, job_id))
    assert pipeline.finish_scoring(db, job_id)  # ... and the `rank` message was lost
    assert run(db, LEASE / 2)[0] == []
    assert run(db, LEASE / 2 + 1)[0] == [("knas.rank", [job_id], 7)]
    assert run(db, 1)[0] == []


def test_a_training_job_with_nothing_open_gets_finalise(db):
    job_id = new_job(db)
    for candidate_id in to_training(db, job_id):
        with db.session() as s:
            s.execute(update(Training).where(Training.candidate_id == candidate_id)
                      .values(status="done", valid_acc=0.5, test_acc=0.5))
    sent = requeue_stranded(db, Sent(), LEASE).enqueued
    assert sent == [("knas.finalise", [job_id])]  # at once: nothing is running that could still do it
    age(db, 1)
    assert requeue_stranded(db, Sent(), LEASE).enqueued == []
    pipeline.finalise(db, job_id)
    assert job(db, job_id).status == "succeeded"


def test_pending_trainings_of_an_idle_training_job_are_re_enqueued(db):
    job_id = new_job(db)
    top = to_training(db, job_id)  # ... and both train_candidate messages were lost
    assert run(db, LEASE / 2)[0] == []
    assert sorted(run(db, LEASE / 2 + 1)[0]) == sorted(("knas.train_candidate", [job_id, c], 7) for c in top)


# ---------------------------------------------------------------- rule 4: stalled jobs fail

def test_a_stalled_job_fails_with_a_reason_naming_the_stage_and_the_last_worker(db):
    from worker.presence import record

    job_id = new_job(db)
    pipeline.start_job(db, job_id)
    store_scores(db, job_id, candidate_ids(db, job_id)[:1], worker="gpu3@node7")
    record(db, "gpu3@node7", hostname="node7", device="cuda")
    queued = new_job(db)
    age(db, STALL - 5)
    assert fail_stalled(db, STALL).failed == {}
    sent, report = run(db, 6)
    reason = report.failed[job_id]
    assert "stalled in scoring" in reason and "gpu3@node7" in reason and "last seen" in reason
    assert "KNAS_STALL_TIMEOUT" in reason
    failed = job(db, job_id)
    assert failed.status == "failed" and failed.error == reason and failed.finished_at is not None
    assert [args for _, args, _ in sent] == [[queued]]  # nothing re-enqueued for the failed job


def test_a_stalled_training_names_the_training_worker(db):
    job_id = new_job(db)
    first, _ = to_training(db, job_id)
    claim(db, first, worker="gpu1@node2")
    age(db, STALL + 1)
    report = fail_stalled(db, STALL)
    assert "stalled in training" in report.failed[job_id] and "gpu1@node2 (no heartbeat on record)" in report.failed[job_id]


def test_one_broken_job_does_not_stop_the_sweep_of_the_others(db):
    a, b = new_job(db), new_job(db, priority=2)
    for job_id in (a, b):
        pipeline.start_job(db, job_id)
    sent = Sent()

    def enqueue(task, args, priority):
        if args[0] == a:
            raise ConnectionError("broker down")
        sent(task, args, priority)

    age(db, LEASE + 1)
    report = sweep(db, enqueue, lease_seconds=LEASE, stall_timeout=STALL, chunk_size=10)
    assert sent == [("knas.score_chunk", [b, candidate_ids(db, b)], 2)]
    assert len(report.errors) == 1 and a in report.errors[0]


def test_worker_rows_are_upserted(db):
    from worker.presence import clear_current_job, record, set_current_job

    record(db, "cpu@h", hostname="h", device="auto", starting=True)
    set_current_job(db, "cpu@h", "job-1", device="cpu")
    record(db, "cpu@h", hostname="h", device="auto", update_device=False)
    clear_current_job(db, "cpu@h", "job-2")  # another job's end does not clear ours
    with db.session() as s:
        row = s.scalar(select(Worker).where(Worker.name == "cpu@h"))
        assert (row.device, row.current_job) == ("cpu", "job-1")
    clear_current_job(db, "cpu@h", "job-1")
    with db.session() as s:
        assert s.scalar(select(Worker.current_job).where(Worker.name == "cpu@h")) is None
        assert s.scalar(select(Worker.id).where(Worker.name == "cpu@h")) is not None


# ---------------------------------------------------------------- the database's clock, not the sweeper's

def test_a_sweeper_whose_clock_is_hours_off_sees_what_the_others_see(db, monkeypatch):
    """Fresh work stays alone on a host whose clock runs ahead; stale work is recovered by one running behind."""
    from worker.presence import record

    job_id = new_job(db)
    first, second = to_training(db, job_id)
    skew_clock(monkeypatch, hours=-5)  # the training workers' clocks run behind
    claim(db, first, worker="slow@node")
    claim(db, second, worker="slow@node")
    record(db, "slow@node", hostname="node", device="cuda")
    skew_clock(monkeypatch, hours=+5)  # this sweeper's runs ahead: neither a lease nor the job looks expired
    assert run(db)[0] == [] and run(db, LEASE / 2)[1].failed == {}
    assert training(db, first).status == training(db, second).status == "running"
    age(db, LEASE / 2 + 1)
    with db.session() as s:  # `second` keeps beating; `first`'s worker died
        s.execute(update(Training).where(Training.candidate_id == second).values(heartbeat_at=db_now()))
    skew_clock(monkeypatch, hours=-5)  # a sweeper whose clock runs behind still finds the expired lease
    sent, report = run(db)
    assert sent == [("knas.train_candidate", [job_id, first], 7)] and report.failed == {}
    assert training(db, first).status == "pending" and training(db, second).status == "running"
    report = run(db, STALL + 1)[1]  # ... and the stalled job
    assert "stalled in training" in report.failed[job_id] and "no progress for 61 min" in report.failed[job_id]  # by the database's clock
