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
    """Progress of many jobs in two grouped queries (one over candidates, one over trainings)."""
    if not job_ids:
        return {}
    candidates: dict[str, dict[str, int]] = {job_id: {} for job_id in job_ids}
    trainings: dict[str, dict[str, int]] = {job_id: {} for job_id in job_ids}
    for table, counts in ((Candidate, candidates), (Training, trainings)):
        rows = session.execute(
            select(table.job_id, table.status, func.count())
            .where(table.job_id.in_(job_ids), *([Training.mode != RETRAIN] if table is Training else []))
            .group_by(table.job_id, table.status)
        ).all()
        for job_id, status, n in rows:
            counts[job_id][status] = n
    return {job_id: _progress_counts(candidates[job_id], trainings[job_id]) for job_id in job_ids}


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
