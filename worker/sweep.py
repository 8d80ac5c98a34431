"""The periodic sweep: nothing stays stranded, nothing runs forever.

Every active job's `updated_at` moves whenever a worker makes progress on it
(a candidate scored, an epoch trained, a state change). The sweep looks for
jobs whose progress stopped:

- older than the lease (`lease_seconds`): the work is re-enqueued. Steps are
  idempotent, so a duplicate costs compute, never a duplicate row. Trainings
  left `running` by a dead worker go back to `pending` first.
- older than the stall deadline (`stall_timeout`): the job fails with a reason.
"""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import Callable

from sqlalchemy import select, update

from models import Job, Store, Training, utcnow

from .jobs import fail_job

Enqueue = Callable[[str, tuple, int], None]  # (task name, args, job priority)


def sweep(store: Store, enqueue: Enqueue, lease_seconds: float, stall_timeout: float,
          now: datetime | None = None) -> dict[str, list[str]]:
    now = now or utcnow()
    lease_cutoff = now - timedelta(seconds=lease_seconds)
    stall_cutoff = now - timedelta(seconds=stall_timeout)
    report: dict[str, list[str]] = {"requeued": [], "failed": []}
    with store.session() as session:
        stale = session.execute(
            select(Job.id, Job.status, Job.priority, Job.updated_at)
            .where(Job.status.in_(("queued", "scoring", "ranking", "training")), Job.updated_at < lease_cutoff)
        ).all()
    for job_id, status, priority, updated_at in stale:
        if updated_at < stall_cutoff:
            if fail_job(store, job_id, f"no worker made progress for {stall_timeout:.0f} s "
                                       f"(stage {status}, last progress {updated_at.isoformat()} UTC)"):
                report["failed"].append(job_id)
            continue
        _requeue(store, enqueue, job_id, status, priority, updated_at)
        report["requeued"].append(job_id)
    return report


def _requeue(store: Store, enqueue: Enqueue, job_id: str, status: str, priority: int, seen: datetime) -> None:
    with store.session() as session:
        # Claim this lease renewal: if another sweep (or a worker) touched the job since we looked, skip.
        claimed = session.execute(
            update(Job).where(Job.id == job_id, Job.updated_at == seen).values(updated_at=utcnow())
        ).rowcount
        if not claimed:
            return
        if status == "training":
            session.execute(update(Training).where(Training.job_id == job_id, Training.status == "running")
                            .values(status="pending"))
            open_ids = session.scalars(select(Training.candidate_id).where(
                Training.job_id == job_id, Training.status == "pending")).all()
    if status in ("queued", "scoring"):
        enqueue("knas.start_job", (job_id,), priority)  # re-fans out whatever is still pending
    elif status == "ranking":
        enqueue("knas.rank", (job_id,), priority)
    elif open_ids:
        for candidate_id in open_ids:
            enqueue("knas.train_candidate", (job_id, candidate_id), priority)
    else:
        enqueue("knas.finalise", (job_id,), priority)
