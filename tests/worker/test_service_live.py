"""Real Celery workers (`knas worker` subprocesses) on the real PostgreSQL + Redis run jobs end to end.

These tests need the services (tests/conftest.py's `pg_url`/`redis_url`); in CI a missing service is
a failure, never a skip.
"""
from __future__ import annotations

import time
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from knas.jobspec import JobSpec
from models import Candidate, Job, Store, Training, Worker, utcnow
from worker import jobs, pipeline, runner

from tests.support.specs import job_spec
from tests.support.workers import submit_job, wait_for_rows, wait_jobs_done, worker_env

SPEC = job_spec(8, seed=11, dataset="tiny", top_k=2, epochs=1, priority=6)


def local_ranking(spec: JobSpec, tmp_path) -> dict[str, tuple[int, float]]:
    """The same spec run in-process on a SQLite store (one torch thread, like the workers)."""
    import torch

    from worker.runtime import Runtime

    local = Store(f"sqlite:///{tmp_path / 'local.db'}")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        job_id = jobs.create_job(local, spec)
        assert runner.run_job(local, Runtime(device="cpu", worker_name="local"), job_id, chunk_size=2) == "succeeded"
        with local.session() as s:
            return {a: (r, sc) for a, r, sc in s.execute(
                select(Candidate.arch, Candidate.rank, Candidate.score).where(Candidate.job_id == job_id))}
    finally:
        torch.set_num_threads(threads)
        local.dispose()


def test_two_workers_run_a_job_to_the_local_ranking_and_recover_lost_work(pg_url, redis_url, start_worker, tmp_path):
    store = Store(pg_url)
    # KNAS_LEASE_SECONDS=5: the second job's lost chunks come back within seconds.
    workers = [start_worker(name, KNAS_LEASE_SECONDS="5") for name in ("wa", "wb")]
    rows = wait_for_rows(store, {"wa", "wb"}, timeout=90, procs=workers)
    nodes = {rows["wa"].name, rows["wb"].name}

    spec = JobSpec.model_validate(SPEC)
    job_id = jobs.create_job(store, spec)
    submit_job(job_id, spec.priority, worker_env(pg_url, redis_url, tmp_path / "home"))
    # A job whose fan-out was lost: it is `scoring` but no chunk message exists. Only the sweep can finish it.
    lost = jobs.create_job(store, JobSpec.model_validate({**SPEC, "seed": 12, "final": {"mode": "none"},
                                                              "candidates": {"strategy": "random", "n": 4}}))
    assert len(pipeline.start_job(store, lost, chunk_size=2)) == 2
    started = time.time()
    states = wait_jobs_done(store, [job_id, lost], timeout=150, workers=workers)
    elapsed = time.time() - started
    assert states == {job_id: "succeeded", lost: "succeeded"}, [w.output()[-3000:] for w in workers]

    with store.session() as s:
        def rows_of(j):
            return s.execute(select(Candidate.arch, Candidate.rank, Candidate.score, Candidate.worker,
                                    Candidate.status).where(Candidate.job_id == j)).all()
        remote, recovered = rows_of(job_id), rows_of(lost)
        per_arch = s.execute(select(func.count()).select_from(Candidate).where(Candidate.job_id == job_id)
                             .group_by(Candidate.arch)).scalars().all()
        trainings = s.execute(select(Training.status, Training.worker, Training.attempts)
                              .where(Training.job_id == job_id)).all()
        job, lost_job = s.get(Job, job_id), s.get(Job, lost)
    # Each candidate is stored exactly once, with a score, by one of the two workers.
    assert len(remote) == 8 and per_arch == [1] * 8
    assert all(r.status == "scored" and r.score is not None and r.worker in nodes for r in remote)
    assert sorted(r.rank for r in remote) == list(range(1, 9))
    assert len(trainings) == 2 and all(t.status == "done" and t.worker in nodes and t.attempts == 1 for t in trainings)
    assert job.result["winner"]["arch"] in {e["arch"] for e in job.result["top_k"]}
    # Both workers took part (the two jobs give them 6 chunks and 2 trainings to share).
    used = {r.worker for r in remote} | {r.worker for r in recovered} | {t.worker for t in trainings}
    assert used == nodes, f"only {used} did any work in {elapsed:.1f} s"
    # The lost fan-out was re-enqueued by a sweep, once its lease ran out.
    assert lost_job.swept_at is not None and all(r.status == "scored" for r in recovered)

    # Same ranking and scores as the in-process run with the same seed.
    local = local_ranking(spec, tmp_path)
    assert {a: rank for a, rank, _, _, _ in remote} == {a: rank for a, (rank, _) in local.items()}
    for arch, _, score, _, _ in remote:
        assert score == pytest.approx(local[arch][1], rel=1e-6)

    # Heartbeats: both rows are fresh, name their device, and hold no job once the work is done.
    time.sleep(1.5)
    with store.session() as s:
        live = {w.name: w for w in s.scalars(select(Worker))}
    assert set(live) == nodes
    for row in live.values():
        assert row.device == "cpu" and row.current_job is None
        assert utcnow() - row.last_seen < timedelta(seconds=10)

    # A warm shutdown through the supervisor: SIGTERM is forwarded, everything exits cleanly.
    for worker in workers:
        assert worker.stop(timeout=30) == 0, worker.output()[-3000:]
        assert "Warm shutdown" in worker.output() and "exited with status 0" in worker.output()
    store.dispose()
