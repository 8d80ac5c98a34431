"""Cancellation races: a cancel during scoring, ranking and training takes effect within one candidate's time.

A cancel is a conditional UPDATE to `cancelled`; every step re-reads the job before each candidate
(scoring) or after each epoch (training) and moves the job on only with a conditional UPDATE, so
nothing may revive a cancelled job, and no task may keep working for it for longer than the
candidate or epoch it was in when the cancel landed. Each test waits until the broker is drained
and no worker names the job before it judges, so "nothing more happened" is checked, not assumed.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import httpx
import pytest
from sqlalchemy import select

from models import Candidate, Training
from worker import pipeline

from tests.reliability.checks import check_job
from tests.reliability.ledger import LEDGER
from tests.reliability.stack import Stack
from tests.reliability.watchers import StateWatch
from tests.support.specs import tiny_spec
from tests.support.waiting import wait_for


@dataclass
class Service:
    stack: Stack
    url: str
    token: str

    def cancel(self, job_id: str) -> datetime:
        """POST /v1/jobs/{id}/cancel as the owner; returns when the server recorded it (finished_at)."""
        with httpx.Client(base_url=self.url, timeout=30, headers={"Authorization": f"Bearer {self.token}"}) as http:
            response = http.post(f"/v1/jobs/{job_id}/cancel")
        assert response.status_code == 202 and response.json()["status"] == "cancelled", response.text
        LEDGER.fault("cancel")
        return datetime.fromisoformat(response.json()["finished_at"]).replace(tzinfo=None)


@pytest.fixture(scope="module")
def service(module_stack):
    s = module_stack()
    api = s.start_api()
    workers = [s.start_worker("wa"), s.start_worker("wb")]
    s.wait_ready(*workers)
    return Service(s, api.url, s.add_user("carol"))


def test_cancel_during_scoring_stops_each_worker_within_one_candidate(service):
    s = service.stack
    job = s.create_job(tiny_spec(48, seed=301), owner="carol")
    with StateWatch(s.db_url, [job]) as watch:
        wait_for(lambda: (p := s.progress(job))["scored"] >= 6 and p["pending"] >= 24, 60, "scoring under way",
                 interval=0.02, context=s.logs)
        cancelled_at = service.cancel(job)
        s.wait_quiet(job)
    with s.store.session() as session:
        rows = session.execute(select(Candidate.scored_at, Candidate.proxy_seconds, Candidate.status)
                               .where(Candidate.job_id == job)).all()
    late = [r for r in rows if r.scored_at is not None and r.scored_at > cancelled_at]
    slowest = max(r.proxy_seconds for r in rows if r.proxy_seconds is not None)
    # At most the candidate each of the two workers was inside when the cancel landed.
    assert len(late) <= 2, late
    for r in late:
        assert (r.scored_at - cancelled_at).total_seconds() <= slowest + 2.0, (r, slowest)
    assert sum(1 for r in rows if r.status == "pending") >= 20  # the rest was never scored
    check = check_job(s.store, job)
    assert check.status == "cancelled" and check.duplicates == 0 and check.lost == 0
    assert watch.seen[job][-1] == "cancelled" and "ranking" not in watch.seen[job]


def test_cancel_during_ranking_creates_no_training(service, monkeypatch):
    """Positioned, not hoped for: the job is held in `ranking` (scored in this process, the workers paused
    so that no sweep moves it on), then cancelled (a) before `rank` runs and (b) inside `rank`'s
    transaction, between reading the job and moving it on."""
    from worker.runtime import Runtime

    s = service.stack
    runtime = Runtime(device="cpu", worker_name="test-process")
    s.pause_workers()
    try:
        jobs = []
        for seed in (311, 312):
            job = s.create_job(tiny_spec(4, seed=seed, proxy="mgm", probe=8, top_k=2, epochs=3), submit=False,
                               owner="carol")
            for chunk in pipeline.start_job(s.store, job, 4):
                pipeline.score_chunk(s.store, runtime, job, chunk)
            assert pipeline.finish_scoring(s.store, job) or s.status(job) == "ranking"
            jobs.append(job)
        before, inside = jobs
        watch = StateWatch(s.db_url, jobs)
        watch.start()
        # (a) The cancel lands first; the `rank` message (as the last chunk would send it) arrives after.
        service.cancel(before)
    finally:
        s.pause_workers(resume=True)
    with watch:
        s.send("knas.rank", [before])

        # (b) The cancel lands while `rank` holds its transaction open (after it read `ranking`).
        original = pipeline._aggregate_scores

        def cancel_meanwhile(session, job_id, proxy_name):
            service.cancel(job_id)
            return original(session, job_id, proxy_name)

        monkeypatch.setattr(pipeline, "_aggregate_scores", cancel_meanwhile)
        to_train = pipeline.rank(s.store, inside)
        monkeypatch.undo()
        assert to_train == [], "rank handed out trainings for a job cancelled under it"
        s.wait_quiet(before)
        s.wait_quiet(inside)
    for job in jobs:
        check = check_job(s.store, job)
        assert check.status == "cancelled" and check.trainings == [], (job, check.trainings)
        assert watch.seen[job] == ["ranking", "cancelled"]
    LEDGER.notes.append("cancel before rank and inside rank's transaction: no training row, no train message")


def test_cancel_during_training_stops_each_training_after_its_current_epoch(service):
    s = service.stack
    job = s.create_job(tiny_spec(6, seed=321, proxy="mgm", probe=8, top_k=3, epochs=40), owner="carol")
    with StateWatch(s.db_url, [job]) as watch:
        def two_training():
            with s.store.session() as session:
                running = session.scalars(select(Training).where(Training.job_id == job,
                                                                 Training.status == "running")).all()
            return len(running) == 2 and all(2 <= len(t.epochs) <= 30 for t in running)

        wait_for(two_training, 90, "two trainings a few epochs in", interval=0.02, context=s.logs)
        cancelled_at = service.cancel(job)
        s.wait_quiet(job)
    check = check_job(s.store, job, require_all_scored=True)
    assert check.status == "cancelled" and check.lost == 0 and check.duplicates == 0
    stopped = [t for t in check.trainings if t.attempts == 1]
    never = [t for t in check.trainings if t.attempts == 0]
    assert len(stopped) == 2 and len(never) == 1, [(t.status, t.attempts) for t in check.trainings]
    for t in stopped:
        assert t.status == "failed" and t.error == "stopped: the job is no longer training", t.error
        assert len(t.epochs) < 40
        slowest_epoch = max(e["seconds"] for e in t.epochs)
        # The epoch under way when the cancel landed finishes; no further one starts.
        assert (t.finished_at - cancelled_at).total_seconds() <= slowest_epoch + 2.5, (t.finished_at, cancelled_at)
    assert never[0].status == "pending" and not never[0].epochs  # the third top-k candidate never started
    assert watch.seen[job][-1] == "cancelled"
