"""The store's domain statements: every conditional UPDATE the job's steps rely on, in one place.

The steps (worker/pipeline.py, worker/jobs.py) are orchestration plus scorer calls; what may
race, be redelivered or run twice is decided here, by the WHERE clause of one statement, so the
rule "whoever gets there first wins, everyone else sees False" lives next to the columns it
guards. Each function takes the caller's Session: the transaction (what commits together, e.g. a
score and the counter that counts it) stays the caller's choice, as in optuna's `_rdb` storage.

Leases, heartbeats and the progress clock are the database's clock (models/clock.py): written with
`db_now()` and compared in the WHERE clause with `db_ago(seconds)`, so hosts whose clocks differ
agree on what is stale.
"""
from __future__ import annotations

import functools
import uuid
from datetime import datetime
from typing import Any, Iterable

from sqlalchemy import and_, bindparam, exists, func, or_, select, update
from sqlalchemy.orm import Session

from .base import changed, table, utcnow
from .clock import db_ago, db_now
from .tables import RETRAIN, Candidate, Job, Training

# ---------------------------------------------------------------- job state

def transition(session: Session, job_id: str, from_states: Iterable[str], to_state: str, *conditions,
               **values) -> bool:
    """Move a job between states atomically; False if another step got there first."""
    stmt = (
        update(Job)
        .where(Job.id == job_id, Job.status.in_(tuple(from_states)), *conditions)
        .values(status=to_state, updated_at=db_now(), **values)
        .execution_options(synchronize_session=False)
    )
    return changed(session, stmt) == 1


def mark_stage(session: Session, job_id: str, stage: str, edge: str) -> None:
    """Record a stage's start or finish time (only the step that won the transition calls this)."""
    _stamp(session.get_one(Job, job_id, populate_existing=True), stage, edge)


def close_open_stages(session: Session, job_id: str) -> None:
    """Finish every stage that started and did not finish (a job that failed or was cancelled)."""
    job = session.get_one(Job, job_id, populate_existing=True)
    for stage, entry in (job.timings or {}).items():
        if "finished" not in entry:
            _stamp(job, stage, "finished")


def _stamp(job: Job, stage: str, edge: str) -> None:
    timings = dict(job.timings or {})
    entry = dict(timings.get(stage, {}))
    now = utcnow()
    entry[edge] = now.isoformat()
    if edge == "finished" and "started" in entry:
        entry["seconds"] = round((now - datetime.fromisoformat(entry["started"])).total_seconds(), 3)
    timings[stage] = entry
    job.timings = timings  # a new dict: the JSON column sees the change


def touch(session: Session, job_id: str) -> None:
    """Record progress on the job: the sweep's leases and stall deadline count from updated_at."""
    session.execute(update(Job).where(Job.id == job_id).values(updated_at=db_now())
                    .execution_options(synchronize_session=False))


# ---------------------------------------------------------------- scoring

def claim_chunk(session: Session, job_id: str, chunk_size: int) -> list[int]:
    """Hand out the job's next chunk of pending candidates nobody was sent yet ([] if none).

    One conditional UPDATE tags the rows with a fresh token, so two finishing chunks racing for
    the next one never get the same candidates; the loser gets the rest, or nothing.
    """
    if session.scalar(select(Job.status).where(Job.id == job_id)) != "scoring":
        return []
    token = str(uuid.uuid4())
    undispatched = (Candidate.job_id == job_id, Candidate.status == "pending", Candidate.dispatch.is_(None))
    first = select(Candidate.id).where(*undispatched).order_by(Candidate.id).limit(chunk_size)
    session.execute(update(Candidate).where(Candidate.id.in_(first.scalar_subquery()), *undispatched)
                    .values(dispatch=token).execution_options(synchronize_session=False))
    return list(session.scalars(select(Candidate.id).where(Candidate.job_id == job_id, Candidate.dispatch == token)
                                .order_by(Candidate.id)))


def release_chunks(session: Session, job_id: str) -> None:
    """Forget which pending candidates were handed out (the sweep hands them out again)."""
    session.execute(update(Candidate).where(Candidate.job_id == job_id, Candidate.status == "pending")
                    .values(dispatch=None).execution_options(synchronize_session=False))


@functools.lru_cache(maxsize=32)
def _store_score(columns: tuple[str, ...]):
    """UPDATE of one pending candidate of a scoring job, setting `columns`; built once per column set
    (building it cost more than PostgreSQL's part: scoring stores one per candidate)."""
    candidates, jobs = table(Candidate), table(Job)
    scoring_now = exists().where(jobs.c.id == bindparam("job_id_"), jobs.c.status == "scoring")
    return (update(candidates)
            .where(candidates.c.id == bindparam("candidate_id_"), candidates.c.status == "pending", scoring_now)
            .values({name: bindparam(name, type_=candidates.c[name].type) for name in columns}))


@functools.lru_cache(maxsize=1)
def _count_statement():
    """candidates_scored += :scored_, candidates_failed += :failed_ on one job (progress: updated_at), built once."""
    jobs = table(Job)
    return (update(jobs).where(jobs.c.id == bindparam("job_id_"))
            .values(candidates_scored=jobs.c.candidates_scored + bindparam("scored_"),
                    candidates_failed=jobs.c.candidates_failed + bindparam("failed_"),
                    updated_at=db_now()))


def record_score(session: Session, job_id: str, candidate_id: int, values: dict[str, Any]) -> bool:
    """Store one candidate's outcome and count it on the job (`record_scores` of one)."""
    return bool(record_scores(session, job_id, [(candidate_id, values)]))


def record_scores(session: Session, job_id: str, outcomes: list[tuple[int, dict[str, Any]]]) -> set[int]:
    """Store candidates' outcomes and count them on the job, in the caller's transaction; returns
    the ids that were stored.

    An outcome is stored only while its candidate is pending and its job is scoring: a redelivered
    twin of the chunk, or a job cancelled meanwhile, writes nothing for it. The counters move with
    the rows they count (one UPDATE for the batch), so progress stays exact under redelivery and
    crashes.
    """
    now = utcnow()  # scored_at: shown, never compared
    connection = session.connection()
    stored: set[int] = set()
    counts = {"scored": 0, "failed": 0}
    for candidate_id, values in outcomes:
        values = {**values, "scored_at": now}
        if changed(connection, _store_score(tuple(sorted(values))),
                   {**values, "job_id_": job_id, "candidate_id_": candidate_id}):
            stored.add(candidate_id)
            counts["scored" if values["status"] == "scored" else "failed"] += 1
    if stored:
        connection.execute(_count_statement(), {"job_id_": job_id, "scored_": counts["scored"],
                                                "failed_": counts["failed"]})
    return stored


def claim_generation(session: Session, job_id: str, generation: int) -> bool:
    """Evolution: move a scoring job from `generation` to the next, only while nothing is pending.

    Of the chunks that finish a generation at the same time, exactly one wins and breeds.
    """
    pending = exists().where(Candidate.job_id == job_id, Candidate.status == "pending")
    return changed(session, update(Job).where(Job.id == job_id, Job.status == "scoring",
                                             Job.generation == generation, ~pending)
                           .values(generation=generation + 1, updated_at=db_now())
                           .execution_options(synchronize_session=False)) == 1


def write_ranks(session: Session, job_id: str) -> None:
    """Rank the job's scored candidates, best score first (ties by arch index), in one statement."""
    ordered = select(Candidate.id, func.row_number().over(
        order_by=(Candidate.score.desc(), Candidate.arch_index)).label("position")).where(
        Candidate.job_id == job_id, Candidate.status == "scored").subquery()
    session.execute(update(Candidate).where(Candidate.id == ordered.c.id).values(rank=ordered.c.position)
                    .execution_options(synchronize_session=False))


# ---------------------------------------------------------------- training

def stale_heartbeat(lease_seconds: float):
    """A training whose worker has not beaten for `lease_seconds` by the database's clock (or never)."""
    return or_(Training.heartbeat_at.is_(None), Training.heartbeat_at < db_ago(lease_seconds))


def claim_training(session: Session, training_id: int, worker: str, lease_seconds: float) -> int | None:
    """Claim a training that is pending, or running with a stale heartbeat (its worker died).

    Returns the new attempt number (it fences the previous holder: its writes match on the
    attempt and stop), or None when someone else holds it.
    """
    claimable = or_(Training.status == "pending",
                    and_(Training.status == "running", stale_heartbeat(lease_seconds)))
    claimed = changed(session,
        update(Training).where(Training.id == training_id, claimable)
        .values(status="running", started_at=db_now(), heartbeat_at=db_now(), worker=worker,
                attempts=Training.attempts + 1, error=None)
        .execution_options(synchronize_session=False)
    )
    if not claimed:
        return None
    return session.scalar(select(Training.attempts).where(Training.id == training_id))


def finish_training(session: Session, job_id: str, training_id: int, attempt: int, mode: str,
                    values: dict[str, Any]) -> bool:
    """Store a training's outcome if this attempt still holds it, counting a top-k one on the job."""
    stored = changed(session,
        update(Training).where(Training.id == training_id, Training.status == "running",
                               Training.attempts == attempt)
        .values(finished_at=db_now(), **values)
    )
    if stored and mode != RETRAIN:  # counted with the change it counts (the top-k only)
        counter = Job.trainings_done if values["status"] == "done" else Job.trainings_failed
        session.execute(update(Job).where(Job.id == job_id).values({counter: counter + 1})
                        .execution_options(synchronize_session=False))
    return bool(stored)


def renew_training_lease(session: Session, training_id: int, attempt: int) -> bool:
    """Refresh the heartbeat of a training this attempt still holds; False once finished or taken over."""
    return changed(session,
        update(Training).where(Training.id == training_id, Training.status == "running",
                               Training.attempts == attempt)
        .values(heartbeat_at=db_now()).execution_options(synchronize_session=False)) == 1


def release_stale_training(session: Session, training_id: int, attempt: int, lease_seconds: float) -> bool:
    """Put a running training back to pending if its heartbeat is older than the lease (its worker died).

    False when its worker beat in the meantime, or another sweeper got there first.
    """
    return changed(session,
        update(Training).where(Training.id == training_id, Training.status == "running",
                               Training.attempts == attempt, stale_heartbeat(lease_seconds))
        .values(status="pending").execution_options(synchronize_session=False)) == 1


def unswept(lease_seconds: float):
    """A job no sweep re-enqueued within the lease, by the database's clock."""
    return or_(Job.swept_at.is_(None), Job.swept_at < db_ago(lease_seconds))


def idle(lease_seconds: float):
    """A job with neither progress nor a sweep within the lease: its work may be lost."""
    return and_(Job.updated_at < db_ago(lease_seconds), unswept(lease_seconds))


def claim_sweep(session: Session, job_id: str, status: str, lease_seconds: float, need_idle: bool = True) -> bool:
    """Take this lease period's re-enqueue of a job: exactly one sweeper wins, and only if still `idle`
    (`need_idle=False`: `unswept` only)."""
    conditions = [Job.id == job_id, Job.status == status,
                  idle(lease_seconds) if need_idle else unswept(lease_seconds)]
    return changed(session,
        update(Job).where(and_(*conditions))
        .values(swept_at=db_now(), updated_at=Job.updated_at)  # a sweep is not progress: keep the stall clock
        .execution_options(synchronize_session=False)
    ) == 1
