"""The periodic sweep: no job stays stranded by a lost message or a dead worker, none waits forever.

Plain functions over the store; every worker's heartbeat thread runs `sweep` every
KNAS_SWEEP_INTERVAL seconds (there is no beat process to forget to start), and the
`knas.sweep` task runs it on demand. What to enqueue is handed to a callable
`enqueue(task_name, args, job_priority)`, so tests capture it instead of a broker.

Clocks (all of them the database's, models/clock.py: the sweeping host's own clock is never read,
so nodes whose clocks differ agree on what is stale):
- a job's progress clock is `jobs.updated_at`: the pipeline touches it on every transition,
  every stored score, every training claim and every trained epoch;
- a training's liveness is `trainings.heartbeat_at` (set on claim, after each epoch and by the
  lease thread of the process that trains it);
- `jobs.swept_at` is when a sweep last re-enqueued the job's work. Re-enqueueing needs
  `updated_at` AND `swept_at` older than the lease, claimed with one conditional UPDATE, so
  lost work is re-sent once per lease however many workers sweep, and a sweep never counts as
  progress (the stall deadline still runs).

Rules (each a function below; `sweep` runs them all):
1. `requeue_scoring` - a `scoring` job with nothing pending moves to `ranking` now (its last chunk
   died between storing and the transition); one with pending candidates and no progress for
   `lease_seconds` gets its pending candidates handed out again (`pipeline.redispatch`: the
   fan-out window's worth of chunks; each finished chunk sends the next, as after `start_job`).
2. `reset_stale_trainings` - a `running` training whose heartbeat is older than the lease goes back
   to `pending` (fenced on `attempts`) and is re-enqueued.
3. `requeue_stranded` - a `queued` job not started within the lease gets `start_job` again; a
   `ranking` job without progress gets `rank` again; a `training` job with nothing open gets
   `finalise`, and one whose pending trainings saw no progress gets them re-enqueued.
4. `fail_stalled` - a started job (`scoring`/`ranking`/`training`) with no progress for
   `stall_timeout` fails with a reason naming the stage and the last worker. A `queued` job is
   never failed for waiting: a backlog is not a fault.

Every step the sweep enqueues is idempotent, so a duplicate (the original message was only slow,
not lost) costs a status check, never a second row.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Callable

from sqlalchemy import select

from models import OPEN_TRAINING_STATES, STARTED_STATES, Candidate, CandidateState, Job, JobState, Store, Training, TrainingState, Worker, repository
from models.clock import db_ago, db_now

from .flow import ChunkScored, Message, Task, follow_up, recover
from .jobs import fail_job

log = logging.getLogger(__name__)

Enqueue = Callable[[str, list, int], Any]  # (task name, args, job priority 0..9)
STARTED = STARTED_STATES


@dataclass
class SweepReport:
    enqueued: list[tuple[str, list]] = field(default_factory=list)  # (task, args) in order
    reset_trainings: list[int] = field(default_factory=list)  # training ids put back to pending
    moved_to_ranking: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # job id -> reason
    errors: list[str] = field(default_factory=list)  # per-job problems (logged; the next sweep tries again)

    def to_dict(self) -> dict[str, Any]:
        return {"enqueued": len(self.enqueued), "reset_trainings": len(self.reset_trainings),
                "moved_to_ranking": self.moved_to_ranking, "failed": self.failed, "errors": self.errors}


def sweep(store: Store, enqueue: Enqueue, *, lease_seconds: float, stall_timeout: float, chunk_size: int,
          window: int | None = None) -> SweepReport:
    """Run every rule once. Safe to run concurrently from many workers."""
    report = SweepReport()
    fail_stalled(store, stall_timeout, report=report)
    reset_stale_trainings(store, enqueue, lease_seconds, report=report)
    requeue_scoring(store, enqueue, lease_seconds, chunk_size, window, report=report)
    requeue_stranded(store, enqueue, lease_seconds, report=report)
    return report


def sweep_with_settings(store: Store, enqueue: Enqueue, settings: Any) -> SweepReport:
    return sweep(store, enqueue, lease_seconds=settings.lease_seconds, stall_timeout=settings.stall_timeout,
                 chunk_size=settings.chunk_size, window=settings.fanout_window)


# ---------------------------------------------------------------- rule 1: scoring

def requeue_scoring(store: Store, enqueue: Enqueue, lease_seconds: float, chunk_size: int,
                    window: int | None = None, report: SweepReport | None = None) -> SweepReport:
    """`window` chunks are handed out again (None: all pending), as `start_job` hands them out."""
    from .pipeline import finish_scoring, hand_out, next_generation, redispatch  # the pipeline's exactly-once steps

    report = report or SweepReport()
    for job_id, priority, updated_at, idle, _unswept in _jobs(store, JobState.SCORING, lease_seconds):
        try:
            with store.session() as session:
                pending = session.scalars(select(Candidate.id).where(
                    Candidate.job_id == job_id, Candidate.status == CandidateState.PENDING).order_by(Candidate.id)).all()
            if not pending:  # every score stored, but the chunk that stored the last one died before moving on
                if next_generation(store, job_id):  # evolution: breed what that chunk would have bred
                    _send(enqueue, report, recover(job_id, JobState.SCORING,
                                                   chunks=hand_out(store, job_id, chunk_size, window)), priority)
                elif finish_scoring(store, job_id):
                    report.moved_to_ranking.append(job_id)
                    _send(enqueue, report, follow_up(ChunkScored(job_id, finished=True)), priority)
                continue
            if not idle or not _claim(store, job_id, JobState.SCORING, lease_seconds):
                continue
            log.warning("job %s: no scoring progress since %s; re-dispatching its %d pending candidates",
                        job_id, updated_at, len(pending))
            chunks = redispatch(store, job_id, chunk_size, window)
            _send(enqueue, report, recover(job_id, JobState.SCORING, chunks=chunks), priority)
        except Exception as error:  # one broken job must not stop the sweep of the others
            _error(report, job_id, error)
    return report


# ---------------------------------------------------------------- rule 2: trainings

def reset_stale_trainings(store: Store, enqueue: Enqueue, lease_seconds: float,
                          report: SweepReport | None = None) -> SweepReport:
    report = report or SweepReport()
    stale_heartbeat = repository.stale_heartbeat(lease_seconds)
    with store.session() as session:
        rows = session.execute(
            select(Training.id, Training.job_id, Training.candidate_id, Training.attempts, Training.worker,
                   Job.priority)
            .join(Job, Job.id == Training.job_id)
            .where(Job.status == JobState.TRAINING, Training.status == TrainingState.RUNNING, stale_heartbeat)
            .order_by(Training.id)
        ).all()
    for training_id, job_id, candidate_id, attempts, worker, priority in rows:
        try:
            with store.session() as session:
                reset = repository.release_stale_training(session, training_id, attempts, lease_seconds)
            if not reset:  # its worker beat in the meantime, or another sweep got there first
                continue
            log.warning("training %s (job %s) lost its worker %s; re-enqueued", training_id, job_id, worker)
            report.reset_trainings.append(training_id)
            _send(enqueue, report, recover(job_id, JobState.TRAINING, pending_trainings=[candidate_id],
                                           open_trainings=1), priority)
        except Exception as error:
            _error(report, job_id, error)
    return report


# ---------------------------------------------------------------- rule 3: lost start/rank/train/finalise

def requeue_stranded(store: Store, enqueue: Enqueue, lease_seconds: float,
                     report: SweepReport | None = None) -> SweepReport:
    report = report or SweepReport()
    for status in (JobState.QUEUED, JobState.RANKING, JobState.TRAINING):
        for job_id, priority, updated_at, idle, unswept in _jobs(store, status, lease_seconds):
            try:
                if status == JobState.TRAINING:
                    _requeue_training(store, enqueue, report, job_id, priority, updated_at, idle, unswept,
                                      lease_seconds)
                elif idle and _claim(store, job_id, status, lease_seconds):
                    messages = recover(job_id, status)
                    log.warning("job %s %s since %s; re-enqueueing %s", job_id, status.value, updated_at,
                                ", ".join(m.task.value for m in messages))
                    _send(enqueue, report, messages, priority)
            except Exception as error:
                _error(report, job_id, error)
    return report


def _requeue_training(store, enqueue, report, job_id, priority, updated_at, idle, unswept, lease_seconds) -> None:
    with store.session() as session:
        open_rows = session.execute(select(Training.candidate_id, Training.status).where(
            Training.job_id == job_id, Training.status.in_(OPEN_TRAINING_STATES)).order_by(Training.candidate_id)).all()
    if not open_rows:  # every training ended, but `finalise` never ran (or its message was lost)
        if unswept:
            if _claim(store, job_id, JobState.TRAINING, lease_seconds, need_idle=False):
                _send(enqueue, report, recover(job_id, JobState.TRAINING, open_trainings=0), priority)
        return
    sent = {args[1] for task, args in report.enqueued if task == Task.TRAIN and args[0] == job_id}
    pending = [cid for cid, status in open_rows if status == TrainingState.PENDING and cid not in sent]  # rule 2 sent those
    if pending and idle and _claim(store, job_id, JobState.TRAINING, lease_seconds):
        log.warning("job %s: no training progress since %s; re-enqueueing %d trainings", job_id, updated_at,
                    len(pending))
        _send(enqueue, report, recover(job_id, JobState.TRAINING, pending_trainings=pending,
                                       open_trainings=len(open_rows)), priority)


# ---------------------------------------------------------------- rule 4: stalled jobs fail

def fail_stalled(store: Store, stall_timeout: float, report: SweepReport | None = None) -> SweepReport:
    report = report or SweepReport()
    with store.session() as session:
        rows = session.execute(select(Job.id, Job.status, Job.updated_at, db_now())
                               .where(Job.status.in_(STARTED), Job.updated_at < db_ago(stall_timeout))).all()
    for job_id, status, updated_at, now in rows:
        try:
            reason = (f"stalled in {status}: no progress for {_age(now - updated_at)} "
                      f"(KNAS_STALL_TIMEOUT={stall_timeout:g} s); last progress {updated_at.isoformat(timespec='seconds')} "
                      f"UTC; last worker: {_last_worker(store, job_id, status)}")
            with store.session() as session:  # re-check under the same condition: progress may just have happened
                still = session.scalar(select(Job.id).where(Job.id == job_id, Job.status == status,
                                                            Job.updated_at < db_ago(stall_timeout)))
            if still and fail_job(store, job_id, reason):
                log.error("job %s failed: %s", job_id, reason)
                report.failed[job_id] = reason
        except Exception as error:
            _error(report, job_id, error)
    return report


def _last_worker(store: Store, job_id: str, status: str) -> str:
    """Who last worked on the job, and when that worker was last seen alive."""
    with store.session() as session:
        name = None
        if status == JobState.TRAINING:
            name = session.scalar(select(Training.worker).where(Training.job_id == job_id, Training.worker.is_not(None))
                                  .order_by(Training.heartbeat_at.desc().nulls_last(), Training.id.desc()).limit(1))
        if name is None:
            name = session.scalar(select(Candidate.worker).where(Candidate.job_id == job_id,
                                                                 Candidate.scored_at.is_not(None))
                                  .order_by(Candidate.scored_at.desc()).limit(1))
        if name is None:
            name = session.scalar(select(Worker.name).where(Worker.current_job == job_id).limit(1))
        if name is None:
            return "none (no worker recorded any work on it)"
        seen = session.scalar(select(Worker.last_seen).where(Worker.name == name))
    return f"{name} (last seen {seen.isoformat(timespec='seconds')} UTC)" if seen else f"{name} (no heartbeat on record)"


# ---------------------------------------------------------------- helpers

def _jobs(store: Store, status: str, lease_seconds: float) -> list[tuple[str, int, datetime, bool, bool]]:
    """(id, priority, updated_at, idle, unswept) of the jobs in `status`, by the database's clock: `unswept`
    = not swept within the lease, `idle` = that and no progress within it either. Only a hint of
    what to claim: `_claim` re-checks the same rules (repository.idle / unswept) in the claim's own UPDATE."""
    with store.session() as session:
        return [(job_id, priority, updated_at, bool(idle), bool(unswept)) for job_id, priority, updated_at, idle, unswept
                in session.execute(
                    select(Job.id, Job.priority, Job.updated_at, repository.idle(lease_seconds),
                           repository.unswept(lease_seconds))
                    .where(Job.status == status).order_by(Job.priority.desc(), Job.created_at)).all()]


def _claim(store: Store, job_id: str, status: str, lease_seconds: float, need_idle: bool = True) -> bool:
    with store.session() as session:  # its own transaction: the claim commits before anything is sent
        return repository.claim_sweep(session, job_id, status, lease_seconds, need_idle)


def _send(enqueue: Enqueue, report: SweepReport, messages: list[Message], priority: int) -> None:
    for message in messages:
        enqueue(message.task.value, list(message.args), priority)
        report.enqueued.append((message.task.value, list(message.args)))


def _error(report: SweepReport, job_id: str, error: Exception) -> None:
    log.warning("sweep of job %s failed: %s: %s", job_id, type(error).__name__, error)
    report.errors.append(f"{job_id}: {type(error).__name__}: {error}")


def _age(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    return f"{seconds / 3600:.1f} h"
