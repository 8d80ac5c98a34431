"""Read-side queries shared by the CLI and the API (torch-free)."""
from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Integer, Row, and_, bindparam, func, select
from sqlalchemy.orm import Session

from .tables import RETRAIN, Candidate, Job, Training


def _progress_counts(candidates: dict[str, int], trainings: dict[str, int]) -> dict[str, int]:
    return {
        "candidates": sum(candidates.values()),
        "scored": candidates.get("scored", 0),
        "failed": candidates.get("failed", 0),
        "pending": candidates.get("pending", 0),
        "trained": trainings.get("done", 0),
        "training": trainings.get("running", 0) + trainings.get("pending", 0),
        "training_failed": trainings.get("failed", 0),
    }


def progress(session: Session, job_id: str) -> dict[str, int]:
    return progress_many(session, [job_id])[job_id]


def progress_of(job) -> dict[str, int]:
    """Progress from a job's counters (a `Job` or any row with its counter columns): nothing is recounted.

    The pipeline updates the counters in the same transaction as the change they count, so they
    are exact after crashes and redeliveries (tests/reliability recounts them after every fault).
    """
    return {
        "candidates": job.candidates_total, "scored": job.candidates_scored, "failed": job.candidates_failed,
        "pending": job.candidates_total - job.candidates_scored - job.candidates_failed,
        "trained": job.trainings_done, "training": job.trainings_total - job.trainings_done - job.trainings_failed,
        "training_failed": job.trainings_failed,
    }


def progress_many(session: Session, job_ids: list[str]) -> dict[str, dict[str, int]]:
    """Progress of many jobs from their counters (one indexed read)."""
    if not job_ids:
        return {}
    rows = session.execute(select(Job.id, Job.candidates_total, Job.candidates_scored, Job.candidates_failed,
                                  Job.trainings_total, Job.trainings_done, Job.trainings_failed)
                           .where(Job.id.in_(job_ids))).all()
    out = {row.id: progress_of(row) for row in rows}
    return {job_id: out.get(job_id, _progress_counts({}, {})) for job_id in job_ids}


def recount(session: Session, job_id: str) -> dict[str, int]:
    """Progress counted from the rows (the counters' reference; tests compare the two)."""
    candidates: dict[str, int] = dict(session.execute(
        select(Candidate.status, func.count()).where(Candidate.job_id == job_id).group_by(Candidate.status)).all())
    trainings: dict[str, int] = dict(session.execute(
        select(Training.status, func.count()).where(Training.job_id == job_id, Training.mode != RETRAIN)
        .group_by(Training.status)).all())
    return _progress_counts(candidates, trainings)


# What `job_summary` reads of a job: a status poll selects these columns, not the whole ORM entity.
SUMMARY_COLUMNS = (Job.id, Job.owner, Job.status, Job.priority, Job.space, Job.dataset, Job.proxy, Job.n_candidates,
                   Job.top_k, Job.spec, Job.created_at, Job.started_at, Job.finished_at, Job.timings, Job.error,
                   Job.result, Job.updated_at, Job.candidates_total, Job.candidates_scored, Job.candidates_failed,
                   Job.trainings_total, Job.trainings_done, Job.trainings_failed)


def job_summary(job: Job | Row[Any]) -> dict[str, Any]:
    """A job as the API and CLI show it; its progress is the row's own counters (no further query).

    `job` is a `Job` or a row of at least `SUMMARY_COLUMNS`."""
    return {
        "id": job.id,
        "owner": job.owner,
        "status": job.status,
        "priority": job.priority,
        "space": job.space,
        "dataset": job.dataset,
        "proxy": job.proxy,
        "n_candidates": job.n_candidates,
        "top_k": job.top_k,
        "spec": job.spec,
        "progress": progress_of(job),
        "created_at": job.created_at.isoformat() if job.created_at else None,
        "started_at": job.started_at.isoformat() if job.started_at else None,
        "finished_at": job.finished_at.isoformat() if job.finished_at else None,
        "timings": job.timings or {},
        "error": job.error,
        "result": job.result,
    }


def find_job(session: Session, job_id: str) -> Job | None:
    """A job by full id or by a unique id prefix (what people type)."""
    job = session.get(Job, job_id)
    if job is not None or len(job_id) < 4:
        return job
    matches = session.scalars(select(Job).where(Job.id.like(f"{job_id}%")).limit(2)).all()
    return matches[0] if len(matches) == 1 else None


def list_jobs(session: Session, status: str | None = None, owner: str | None = None,
              limit: int = 50, offset: int = 0) -> tuple[list[Job], int]:
    query = select(Job)
    if status:
        query = query.where(Job.status == status)
    if owner:
        query = query.where(Job.owner == owner)
    total = session.scalar(select(func.count()).select_from(query.subquery()))
    jobs = list(session.scalars(query.order_by(Job.created_at.desc(), Job.id).limit(limit).offset(offset)).all())
    return jobs, int(total or 0)


PAGE_COLUMNS = (Candidate.id, Candidate.rank, Candidate.arch, Candidate.arch_index, Candidate.status, Candidate.score,
                Candidate.score_std, Candidate.scores, Candidate.params, Candidate.proxy_seconds, Candidate.worker,
                Candidate.error, Training.valid_acc, Training.test_acc, Training.status.label("training_status"))


# Built once, with bound parameters: building the statement cost more than PostgreSQL's part of a page.
_PAGE = (select(*PAGE_COLUMNS)
         .outerjoin(Training, and_(Training.candidate_id == Candidate.id, Training.mode != RETRAIN))
         .where(Candidate.job_id == bindparam("job_id"))
         .order_by(Candidate.rank.asc().nulls_last(), Candidate.id)
         .limit(bindparam("limit", type_=Integer)).offset(bindparam("offset", type_=Integer)))


def ranked_candidates_query(job_id: str, limit: int = 100, offset: int = 0):
    """Best first, unranked last, ties by id: the order of index ix_candidates_job_rank (job_id, rank, id),
    so PostgreSQL reads a page's rows off the index instead of sorting the whole job (migration 0010)."""
    return _PAGE.params(job_id=job_id, limit=limit, offset=offset)


def ranked_candidates(connection: Connection | Session, job_id: str, limit: int = 100,
                      offset: int = 0) -> list[dict[str, Any]]:
    """A page of the job's ranking as plain rows (columns, not ORM entities: a page is read often)."""
    rows = connection.execute(_PAGE, {"job_id": job_id, "limit": limit, "offset": offset})
    return [dict(row._mapping) for row in rows]


def top_k_winner(session: Session, job_id: str) -> tuple[Candidate, Training] | None:
    """The winner among the job's finished top-k trainings: best validation accuracy, the better rank
    on a tie (the paper's protocol); None while none has an accuracy."""
    rows = session.execute(
        select(Candidate, Training).join(Training, Training.candidate_id == Candidate.id)
        .where(Training.job_id == job_id, Training.mode != RETRAIN, Training.status == "done",
               Training.valid_acc.is_not(None))
    ).all()
    if not rows:
        return None
    candidate, training = max(rows, key=lambda row: (row[1].valid_acc, -(row[0].rank or 0)))
    return candidate, training
