"""Read-side queries shared by the CLI and the API (torch-free)."""
from __future__ import annotations

from typing import Any

from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session

from .tables import RETRAIN, Candidate, Job, Training


_PREFETCHED = "knas.progress"  # session.info key: progress of the jobs list_jobs just read


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


def progress_many(session: Session, job_ids: list[str]) -> dict[str, dict[str, int]]:
    """Progress of many jobs from their counters (one indexed read; no row is recounted).

    The pipeline updates the counters in the same transaction as the change they count, so they
    are exact after crashes and redeliveries (tests/reliability recounts them after every fault).
    """
    if not job_ids:
        return {}
    rows = session.execute(select(Job.id, Job.candidates_total, Job.candidates_scored, Job.candidates_failed,
                                  Job.trainings_total, Job.trainings_done, Job.trainings_failed)
                           .where(Job.id.in_(job_ids))).all()
    out = {row.id: {
        "candidates": row.candidates_total, "scored": row.candidates_scored, "failed": row.candidates_failed,
        "pending": row.candidates_total - row.candidates_scored - row.candidates_failed,
        "trained": row.trainings_done, "training": row.trainings_total - row.trainings_done - row.trainings_failed,
        "training_failed": row.trainings_failed,
    } for row in rows}
    return {job_id: out.get(job_id, _progress_counts({}, {})) for job_id in job_ids}


def recount(session: Session, job_id: str) -> dict[str, int]:
    """Progress counted from the rows (the counters' reference; tests compare the two)."""
    candidates: dict[str, int] = dict(session.execute(
        select(Candidate.status, func.count()).where(Candidate.job_id == job_id).group_by(Candidate.status)).all())
    trainings: dict[str, int] = dict(session.execute(
        select(Training.status, func.count()).where(Training.job_id == job_id, Training.mode != RETRAIN)
        .group_by(Training.status)).all())
    return _progress_counts(candidates, trainings)


def job_summary(session: Session, job: Job) -> dict[str, Any]:
    """A job as the API and CLI show it. Progress comes from `list_jobs`' prefetch when it read this job."""
    prefetched = session.info.get(_PREFETCHED, {}).pop(job.id, None)
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
        "progress": prefetched if prefetched is not None else progress(session, job.id),
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
    # One grouped query for the whole page instead of one per job: job_summary picks these up (once each).
    session.info.setdefault(_PREFETCHED, {}).update(progress_many(session, [job.id for job in jobs]))
    return jobs, int(total or 0)


def ranked_candidates(session: Session, job_id: str, limit: int = 100, offset: int = 0) -> list[dict[str, Any]]:
    rows = session.execute(
        select(Candidate, Training)
        .outerjoin(Training, and_(Training.candidate_id == Candidate.id, Training.mode != RETRAIN))
        .where(Candidate.job_id == job_id)
        .order_by(Candidate.rank.is_(None), Candidate.rank, Candidate.id)
        .limit(limit).offset(offset)
    ).all()
    return [
        {
            "id": c.id, "rank": c.rank, "arch": c.arch, "arch_index": c.arch_index, "status": c.status,
            "score": c.score, "score_std": c.score_std, "scores": c.scores, "params": c.params,
            "proxy_seconds": c.proxy_seconds,
            "worker": c.worker, "error": c.error,
            "valid_acc": t.valid_acc if t else None, "test_acc": t.test_acc if t else None,
            "training_status": t.status if t else None,
        }
        for c, t in rows
    ]


def top_k_winner(session: Session, job_id: str) -> tuple[Candidate, Training] | None:
    """The winner among the job's finished top-k trainings: best validation accuracy, the better rank
    on a tie (the paper's protocol); None while none has an accuracy."""
    rows = session.execute(
        select(Candidate, Training).join(Training, Training.candidate_id == Candidate.id)
        .where(Training.job_id == job_id, Training.mode != RETRAIN, Training.status == "done",
               Training.valid_acc.is_not(None))
    ).all()
    return tuple(max(rows, key=lambda row: (row[1].valid_acc, -(row[0].rank or 0)))) if rows else None
