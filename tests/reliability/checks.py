"""What the store must hold after a fault: every candidate once, with a score; no duplicate training; counters exact.

`check_job` counts (and records in LEDGER); `assert_complete` is the invariant for a job that must have succeeded.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any, Callable

from tests.reliability.ledger import LEDGER


@dataclass
class JobCheck:
    status: str
    expected: int  # candidates the spec asked for
    rows: int  # candidate rows stored
    scored: int
    lost: int
    duplicates: int
    trainings: list[Any]
    job: Any


def check_job(store, job_id: str, *, require_all_scored: bool | None = None) -> JobCheck:
    """Count what the store holds for a job against what its spec asked for, and record it in LEDGER.

    lost = archs of the spec with no row, plus (when every candidate must be scored: a succeeded job)
    rows without a score; duplicates = extra rows per arch, extra trainings per candidate, and epochs
    recorded twice in one training.
    """
    from sqlalchemy import select

    from knas.jobspec import JobSpec
    from models import Candidate, Job, Training

    with store.session() as s:
        job = s.get(Job, job_id)
        rows = s.execute(select(Candidate.id, Candidate.arch, Candidate.status, Candidate.score, Candidate.rank)
                         .where(Candidate.job_id == job_id)).all()
        trainings = s.scalars(select(Training).where(Training.job_id == job_id)).all()
        from models.queries import progress, recount

        counted, recounted = progress(s, job_id), recount(s, job_id)
    # The progress counters are kept in the transactions that change what they count: exact after any fault.
    assert counted == recounted, f"job {job_id}: counters {counted} != recount {recounted}"
    expected = set(JobSpec.model_validate(job.spec).resolve_archs())
    archs = [r.arch for r in rows]
    stored = set(archs)
    scored = [r for r in rows if r.status == "scored" and r.score is not None]
    if require_all_scored is None:
        require_all_scored = job.status == "succeeded"
    lost = len(expected - stored) + (sum(1 for r in rows if r.status != "scored" or r.score is None)
                                     if require_all_scored else 0)
    per_candidate = Counter((t.candidate_id, t.mode) for t in trainings)  # the winner may also have a retraining
    duplicates = (len(archs) - len(stored)) + sum(c - 1 for c in per_candidate.values())
    for t in trainings:
        epochs = [e.get("epoch") for e in (t.epochs or [])]
        duplicates += len(epochs) - len(set(epochs))
    LEDGER.jobs[job.status] += 1
    LEDGER.candidates += len(expected)
    LEDGER.score_rows += len(scored)
    LEDGER.lost += lost
    LEDGER.duplicates += duplicates
    LEDGER.trainings += len(trainings)
    return JobCheck(job.status, len(expected), len(rows), len(scored), lost, duplicates, list(trainings), job)


def assert_complete(store, job_id: str, context: Callable[[], str] = lambda: "") -> JobCheck:
    """The job succeeded; every candidate has exactly one row with a score; ranks 1..n; every top-k trained once."""
    check = check_job(store, job_id)
    job = check.job
    assert check.status == "succeeded", f"job {job_id} is {check.status}: {job.error}\n{context()}"
    assert check.lost == 0 and check.duplicates == 0, (check, context())
    assert check.rows == check.expected == check.scored
    from sqlalchemy import select

    from models import Candidate

    with store.session() as s:
        ranks = sorted(s.scalars(select(Candidate.rank).where(Candidate.job_id == job_id)))
    assert ranks == list(range(1, check.expected + 1))
    spec = job.spec
    if spec["final"]["mode"] == "train":
        assert len(check.trainings) == spec["top_k"]
        for t in check.trainings:
            assert t.status == "done", (t.status, t.error)
            assert [e["epoch"] for e in t.epochs] == list(range(1, spec["final"]["epochs"] + 1))
        assert job.result["winner"]["arch"] in {e["arch"] for e in job.result["top_k"]}
    return check
