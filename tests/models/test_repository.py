"""models/repository.py: each guarded statement wins once and refuses otherwise, on both backends.

The whole-job tests (tests/worker, tests/reliability) show the steps stay exact under faults; here
each rule is pinned down at the statement it lives in, on SQLite (embedded) and PostgreSQL (a lab
server; pg_url makes a fresh database per test and fails in CI when the server is missing).
"""
from __future__ import annotations

import time

import pytest
from sqlalchemy import select

from tests.support.clocks import age, skew_clock
from models import RETRAIN, Candidate, Job, Store, Training, repository


@pytest.fixture(params=["sqlite", "postgresql"])
def any_store(request, tmp_path):
    url = f"sqlite:///{tmp_path / 'knas.db'}" if request.param == "sqlite" else request.getfixturevalue("pg_url")
    store = Store(url)
    yield store
    store.dispose()


def new_job(store: Store, n: int = 6, status: str = "scoring", scores: list[float | None] | None = None) -> str:
    with store.session() as session:
        job = Job(spec={}, space="nats-tss", dataset="digits", proxy="mgm", timings={}, status=status,
                  candidates_total=n)
        session.add(job)
        session.flush()
        for i in range(n):
            score = scores[i] if scores else None
            session.add(Candidate(job_id=job.id, arch=f"a{i}", arch_index=i, seed=i, score=score,
                                  status="pending" if score is None else "scored"))
        return job.id


def ids_of(store: Store, job_id: str) -> list[int]:
    with store.session() as session:
        return list(session.scalars(select(Candidate.id).where(Candidate.job_id == job_id).order_by(Candidate.id)))


def job_row(store: Store, job_id: str) -> Job:
    with store.session() as session:
        job = session.get(Job, job_id)
        session.expunge(job)
        return job


def test_chunks_are_disjoint_until_released_and_none_once_not_scoring(any_store):
    job_id = new_job(any_store, n=5)
    with any_store.session() as session:
        first = repository.claim_chunk(session, job_id, 2)
        second = repository.claim_chunk(session, job_id, 2)
        third = repository.claim_chunk(session, job_id, 2)
        assert repository.claim_chunk(session, job_id, 2) == []
    assert first + second + third == ids_of(any_store, job_id)
    with any_store.session() as session:
        repository.release_chunks(session, job_id)
        assert repository.claim_chunk(session, job_id, 10) == ids_of(any_store, job_id)
        repository.release_chunks(session, job_id)
        assert repository.transition(session, job_id, ["scoring"], "cancelled")
        assert repository.claim_chunk(session, job_id, 10) == []


def test_a_score_is_stored_and_counted_once_and_not_after_cancel(any_store):
    job_id = new_job(any_store, n=3)
    a, b, c = ids_of(any_store, job_id)
    with any_store.session() as session:
        assert repository.record_score(session, job_id, a, {"status": "scored", "score": 1.5})
        assert not repository.record_score(session, job_id, a, {"status": "scored", "score": 9.0})  # a redelivered twin
        assert repository.record_score(session, job_id, b, {"status": "failed", "error": "nan"})
    job = job_row(any_store, job_id)
    assert (job.candidates_scored, job.candidates_failed) == (1, 1)
    with any_store.session() as session:
        assert session.get(Candidate, a).score == 1.5
        assert session.get(Candidate, a).scored_at is not None
        repository.transition(session, job_id, ["scoring"], "cancelled")
    with any_store.session() as session:
        assert not repository.record_score(session, job_id, c, {"status": "scored", "score": 2.0})
        assert session.get(Candidate, c).status == "pending"
    assert job_row(any_store, job_id).candidates_scored == 1


def test_a_batch_stores_and_counts_only_what_was_still_pending(any_store):
    job_id = new_job(any_store, n=4)
    a, b, c, d = ids_of(any_store, job_id)
    with any_store.session() as session:
        assert repository.record_score(session, job_id, a, {"status": "scored", "score": 0.5})  # a twin got there first
    with any_store.session() as session:
        stored = repository.record_scores(session, job_id, [
            (a, {"status": "scored", "score": 9.0}), (b, {"status": "scored", "score": 1.0}),
            (c, {"status": "failed", "error": "nan"}), (d, {"status": "scored", "score": 3.0})])
    assert stored == {b, c, d}
    job = job_row(any_store, job_id)
    assert (job.candidates_scored, job.candidates_failed) == (3, 1)
    with any_store.session() as session:
        assert session.get(Candidate, a).score == 0.5  # the twin's score stays
        assert repository.record_scores(session, job_id, []) == set()
    assert job_row(any_store, job_id).candidates_scored == 3


def test_ranks_follow_score_then_arch_index(any_store):
    job_id = new_job(any_store, n=5, status="ranking", scores=[0.5, 2.0, 0.5, None, 1.0])
    with any_store.session() as session:
        repository.write_ranks(session, job_id)
    with any_store.session() as session:
        ranks = dict(session.execute(select(Candidate.arch, Candidate.rank).where(Candidate.job_id == job_id)).all())
    assert ranks == {"a1": 1, "a4": 2, "a0": 3, "a2": 4, "a3": None}


def test_one_chunk_breeds_a_generation_and_only_when_nothing_is_pending(any_store):
    job_id = new_job(any_store, n=2)
    with any_store.session() as session:
        session.get(Job, job_id).generation = 0
    first, second = ids_of(any_store, job_id)
    with any_store.session() as session:
        repository.record_score(session, job_id, first, {"status": "scored", "score": 1.0})
        assert not repository.claim_generation(session, job_id, 0)  # one candidate still pending
        repository.record_score(session, job_id, second, {"status": "scored", "score": 2.0})
        assert repository.claim_generation(session, job_id, 0)
        assert not repository.claim_generation(session, job_id, 0)  # the twin chunk finishing at once
    assert job_row(any_store, job_id).generation == 1


def new_training(store: Store, job_id: str, mode: str = "train") -> int:
    with store.session() as session:
        candidate = session.scalar(select(Candidate.id).where(Candidate.job_id == job_id).limit(1))
        training = Training(job_id=job_id, candidate_id=candidate, mode=mode, status="pending")
        session.add(training)
        session.flush()
        return training.id


def test_a_training_is_held_by_one_attempt_and_a_stale_one_is_fenced(any_store):
    job_id = new_job(any_store, n=1, status="training")
    training_id = new_training(any_store, job_id)
    with any_store.session() as session:
        first = repository.claim_training(session, training_id, "w1", lease_seconds=60)
        assert first == 1
        assert repository.claim_training(session, training_id, "w2", lease_seconds=60) is None  # fresh heartbeat
        assert repository.renew_training_lease(session, training_id, first)
    age(any_store, 120)
    with any_store.session() as session:
        second = repository.claim_training(session, training_id, "w2", lease_seconds=60)  # w1 went silent
        assert second == 2
        assert not repository.renew_training_lease(session, training_id, first)
        assert not repository.finish_training(session, job_id, training_id, first, "train", {"status": "done"})
        assert repository.finish_training(session, job_id, training_id, second, "train",
                                          {"status": "done", "valid_acc": 0.5})
        assert not repository.finish_training(session, job_id, training_id, second, "train", {"status": "done"})
    job = job_row(any_store, job_id)
    assert (job.trainings_done, job.trainings_failed) == (1, 0)


def test_a_retraining_is_not_counted_on_the_top_k(any_store):
    job_id = new_job(any_store, n=1, status="training")
    training_id = new_training(any_store, job_id, mode=RETRAIN)
    with any_store.session() as session:
        attempt = repository.claim_training(session, training_id, "w1", lease_seconds=60)
        assert repository.finish_training(session, job_id, training_id, attempt, RETRAIN, {"status": "failed"})
    assert job_row(any_store, job_id).trainings_failed == 0


def test_a_stale_training_goes_back_to_pending_once(any_store):
    job_id = new_job(any_store, n=1, status="training")
    training_id = new_training(any_store, job_id)
    with any_store.session() as session:
        attempt = repository.claim_training(session, training_id, "w1", lease_seconds=60)
    with any_store.session() as session:
        assert not repository.release_stale_training(session, training_id, attempt, lease_seconds=60)
    age(any_store, 61)
    with any_store.session() as session:
        assert repository.release_stale_training(session, training_id, attempt, lease_seconds=60)
        assert not repository.release_stale_training(session, training_id, attempt, lease_seconds=60)
        assert session.get(Training, training_id).status == "pending"


def test_one_sweeper_claims_an_idle_job_per_lease_period(any_store):
    job_id = new_job(any_store, n=1)
    with any_store.session() as session:
        assert not repository.claim_sweep(session, job_id, "scoring", lease_seconds=10)  # progress just now
        assert repository.claim_sweep(session, job_id, "scoring", lease_seconds=10, need_idle=False)  # `finalise`
    age(any_store, 11)
    before = job_row(any_store, job_id).updated_at
    with any_store.session() as session:
        assert repository.claim_sweep(session, job_id, "scoring", lease_seconds=10)
        assert not repository.claim_sweep(session, job_id, "scoring", lease_seconds=10)  # a second sweeper
        assert not repository.claim_sweep(session, job_id, "ranking", lease_seconds=0)  # not in that state
    assert job_row(any_store, job_id).updated_at == before  # a sweep is not progress


# ---------------------------------------------------------------- the database's clock, not the host's

def test_leases_ignore_the_hosts_clock(any_store, monkeypatch):
    """Three hosts hours apart agree on a lease: the heartbeat is written and compared by the database."""
    job_id = new_job(any_store, n=1, status="training")
    training_id = new_training(any_store, job_id)
    skew_clock(monkeypatch, hours=-3)  # the worker's clock runs behind: its heartbeat must not look 3 h old
    with any_store.session() as session:
        attempt = repository.claim_training(session, training_id, "slow-clock", lease_seconds=60)
        repository.touch(session, job_id)
    skew_clock(monkeypatch, hours=+3)  # a sweeper whose clock runs ahead: nothing is stale yet
    with any_store.session() as session:
        assert repository.claim_training(session, training_id, "fast-clock", lease_seconds=60) is None
        assert not repository.release_stale_training(session, training_id, attempt, lease_seconds=60)
        assert not repository.claim_sweep(session, job_id, "training", lease_seconds=60)
    age(any_store, 61)  # the worker went silent for longer than the lease
    skew_clock(monkeypatch, hours=-3)  # a sweeper whose clock runs behind still sees it expired
    with any_store.session() as session:
        assert repository.claim_sweep(session, job_id, "training", lease_seconds=60)
        assert repository.release_stale_training(session, training_id, attempt, lease_seconds=60)
    skew_clock(monkeypatch, hours=+3)
    with any_store.session() as session:
        assert repository.claim_training(session, training_id, "fast-clock", lease_seconds=60) == attempt + 1
        assert repository.renew_training_lease(session, training_id, attempt + 1)
    skew_clock(monkeypatch, hours=-3)
    with any_store.session() as session:  # the new holder's heartbeat is fresh for a host behind as well
        assert repository.claim_training(session, training_id, "slow-clock", lease_seconds=60) is None


def test_the_database_clock_has_sub_second_resolution(any_store):
    """Leases of a few seconds and heartbeats every second need better than whole seconds."""
    job_id = new_job(any_store, n=1, status="training")
    training_id = new_training(any_store, job_id)
    with any_store.session() as session:
        attempt = repository.claim_training(session, training_id, "w1", lease_seconds=5)
    with any_store.session() as session:
        first = session.get(Training, training_id).heartbeat_at
    time.sleep(0.05)
    with any_store.session() as session:
        assert repository.renew_training_lease(session, training_id, attempt)
        assert not repository.release_stale_training(session, training_id, attempt, lease_seconds=0.5)
    with any_store.session() as session:
        second = session.get(Training, training_id).heartbeat_at
    assert 0.04 < (second - first).total_seconds() < 5
    time.sleep(0.6)
    with any_store.session() as session:
        assert repository.release_stale_training(session, training_id, attempt, lease_seconds=0.5)
