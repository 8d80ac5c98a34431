"""The job's flow in one place: which message follows each step, and which messages recover a stall.

    start_job -> score_chunk x N -> (the chunk whose finish_scoring won) rank -> train_candidate x k
    -> (the last one's finalise; with final.retrain_epochs first the winner's retraining) -> done

A message is a task name and its arguments. Each step (`run`) does its work through the pipeline
and returns a typed outcome; `follow_up(outcome)` says which messages come next; `recover(...)`
says which messages put a stalled job back on its feet. The Celery tasks (worker/tasks.py) send
those messages to the broker, the in-process runner (`drain`) runs them in this process, and the
sweep (worker/sweep.py) sends what `recover` says: the three share this module and nothing else
decides what comes next.

Torch-free: the API imports the task names (it sends `knas.start_job`); the pipeline is imported
inside `run`.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from functools import singledispatch
from typing import Any, Callable, Sequence

from models import JobState
from models.states import StrEnum


class Task(StrEnum):
    """Celery task names (stable: messages in a broker outlive a deploy)."""

    START_JOB = "knas.start_job"
    SCORE_CHUNK = "knas.score_chunk"
    RANK = "knas.rank"
    TRAIN = "knas.train_candidate"
    FINALISE = "knas.finalise"
    SWEEP = "knas.sweep"

class Queue(StrEnum):
    """Broker queues: scoring is short and wide, training long; a worker may serve either or both."""

    SCORE = "score"
    TRAIN = "train"

ROUTES: dict[Task, Queue] = {
    Task.START_JOB: Queue.SCORE, Task.SCORE_CHUNK: Queue.SCORE, Task.RANK: Queue.SCORE, Task.SWEEP: Queue.SCORE,
    Task.TRAIN: Queue.TRAIN, Task.FINALISE: Queue.TRAIN,
}


@dataclass(frozen=True)
class Message:
    task: Task
    args: tuple

    @property
    def job_id(self) -> str:
        return self.args[0]


# ---------------------------------------------------------------- typed outcomes of the steps

@dataclass(frozen=True)
class Started:
    job_id: str
    chunks: list[list[int]]  # handed out now (all of them in-process; a window's worth for workers)
    scoring_finished: bool = False  # nothing to score at all: the job moved straight to ranking


@dataclass(frozen=True)
class ChunkScored:
    job_id: str
    finished: bool  # this chunk's finish_scoring moved the job to ranking (exactly one chunk sees True)
    cancelled: bool = False
    next_chunk: list[int] = field(default_factory=list)  # the job's next chunk, handed out to this sender
    report: dict[str, int] = field(default_factory=dict)  # scored / skipped / failed counts
    new_generation: list[list[int]] = field(default_factory=list)  # evolution: the bred generation's first chunks


@dataclass(frozen=True)
class Ranked:
    job_id: str
    to_train: list[int]  # candidate ids whose training is open


@dataclass(frozen=True)
class TrainingEnded:
    """After a training (or a `finalise`): the winner's retraining, if one now waits to be sent."""

    job_id: str
    retraining: list[int] = field(default_factory=list)
    status: str | None = None  # the training's final status (train_candidate)
    finalised: bool = False  # this call moved the job to its final state (finalise)


@singledispatch
def follow_up(outcome: Any) -> list[Message]:
    raise TypeError(f"no follow-up rule for {type(outcome).__name__}")


@follow_up.register
def _(outcome: Started) -> list[Message]:
    if outcome.scoring_finished:
        return [Message(Task.RANK, (outcome.job_id,))]
    return [Message(Task.SCORE_CHUNK, (outcome.job_id, chunk)) for chunk in outcome.chunks]


@follow_up.register
def _(outcome: ChunkScored) -> list[Message]:
    if outcome.finished:
        return [Message(Task.RANK, (outcome.job_id,))]
    if outcome.cancelled:
        return []
    chunks = outcome.new_generation + ([outcome.next_chunk] if outcome.next_chunk else [])
    return [Message(Task.SCORE_CHUNK, (outcome.job_id, chunk)) for chunk in chunks]  # fair share: to the back


@follow_up.register
def _(outcome: Ranked) -> list[Message]:
    return [Message(Task.TRAIN, (outcome.job_id, candidate_id)) for candidate_id in outcome.to_train]


@follow_up.register
def _(outcome: TrainingEnded) -> list[Message]:
    return [Message(Task.TRAIN, (outcome.job_id, candidate_id)) for candidate_id in outcome.retraining]


def recover(job_id: str, status: str, *, chunks: Sequence[list[int]] = (), pending_trainings: Sequence[int] = (),
            open_trainings: int = 0) -> list[Message]:
    """The messages that put a stalled job back on its feet, given what the sweep found.

    queued: start it again; scoring: the pending candidates' chunks (handed out again by the sweep);
    ranking: rank again; training: the pending trainings, or `finalise` when none is open any more.
    Every step is idempotent, so a message that was only slow costs a status check.
    """
    if status == JobState.QUEUED:
        return [Message(Task.START_JOB, (job_id,))]
    if status == JobState.SCORING:
        return [Message(Task.SCORE_CHUNK, (job_id, chunk)) for chunk in chunks]
    if status == JobState.RANKING:
        return [Message(Task.RANK, (job_id,))]
    if status == JobState.TRAINING:
        if not open_trainings:
            return [Message(Task.FINALISE, (job_id,))]
        return [Message(Task.TRAIN, (job_id, candidate_id)) for candidate_id in pending_trainings]
    return []


# ---------------------------------------------------------------- running a step

@dataclass
class StepContext:
    """What a step needs: the store, the runtime, and the few settings that shape the flow."""

    store: Any
    runtime: Any
    chunk_size: int = 25
    window: int | None = None  # scoring chunks handed out at once (None: all, the in-process runner)
    lease_seconds: float = 600
    on_progress: Callable[[str, dict[str, Any]], None] | None = None


def run(message: Message, ctx: StepContext) -> Any:
    """Do the step the message names; returns its outcome (None for a step with no follow-up)."""
    from . import jobs, pipeline

    task, args, progress = Task(message.task), message.args, ctx.on_progress or pipeline._noop
    job_id = args[0]
    if task is Task.START_JOB:
        if jobs.job_status(ctx.store, job_id) != JobState.QUEUED:
            # Started already: a redelivery or a sweep duplicate. Handing out again would duplicate
            # every chunk; chunks lost from the first hand-out come back through the sweep.
            return Started(job_id, [])
        chunks = pipeline.start_job(ctx.store, job_id, ctx.chunk_size, window=ctx.window)
        progress("stage", {"job_id": job_id, "stage": "scoring"})
        finished = not chunks and pipeline.finish_scoring(ctx.store, job_id)  # nothing to score at all
        return Started(job_id, chunks, scoring_finished=bool(finished))
    if task is Task.SCORE_CHUNK:
        report = pipeline.score_chunk(ctx.store, ctx.runtime, job_id, [int(c) for c in args[1]], progress)
        finished, cancelled = bool(report.get("finished")), bool(report.get("cancelled"))
        bred = pipeline.hand_out(ctx.store, job_id, ctx.chunk_size, ctx.window) if report.get("bred") else []
        nxt = [] if finished or cancelled or bred else pipeline.next_chunk(ctx.store, job_id, ctx.chunk_size)
        return ChunkScored(job_id, finished, cancelled, nxt, report, bred)
    if task is Task.RANK:
        progress("stage", {"job_id": job_id, "stage": "ranking"})
        return Ranked(job_id, pipeline.rank(ctx.store, job_id))
    if task is Task.TRAIN:
        progress("stage", {"job_id": job_id, "stage": "training", "candidate_id": int(args[1])})
        status = pipeline.train_candidate(ctx.store, ctx.runtime, job_id, int(args[1]), progress,
                                          lease_seconds=ctx.lease_seconds)
        return TrainingEnded(job_id, pipeline.open_retraining(ctx.store, job_id), status=status)
    if task is Task.FINALISE:
        done = pipeline.finalise(ctx.store, job_id, ctx.runtime)
        return TrainingEnded(job_id, pipeline.open_retraining(ctx.store, job_id), finalised=done)
    raise ValueError(f"{task.value} is not a step of a job")


def drain(first: list[Message], ctx: StepContext) -> None:
    """The in-process runner: run the messages and everything that follows them, here, in order."""
    messages: deque[Message] = deque(first)
    while messages:
        outcome = run(messages.popleft(), ctx)
        messages.extend(follow_up(outcome))


def resume(store: Any, job_id: str, chunk_size: int) -> list[Message]:
    """Where an in-process run of the job starts: a new job's start, or (after a restart) whatever its
    state says is left: every pending chunk, its ranking, its open trainings, or its finalise."""
    from sqlalchemy import select

    from models import OPEN_TRAINING_STATES, Training

    from . import jobs, pipeline

    status = jobs.job_status(store, job_id)
    if status == JobState.SCORING:
        chunks = pipeline.start_job(store, job_id, chunk_size)  # in-process: every pending candidate
        if not chunks and pipeline.next_generation(store, job_id):  # evolution: a scored generation, unbred
            chunks = pipeline.hand_out(store, job_id, chunk_size, None)
        if not chunks:
            return [Message(Task.RANK, (job_id,))] if pipeline.finish_scoring(store, job_id) else []
        return recover(job_id, status, chunks=chunks)
    if status == JobState.TRAINING:
        with store.session() as session:  # no other process runs this job's trainings: running ones are ours
            open_rows = list(session.scalars(select(Training.candidate_id).where(
                Training.job_id == job_id, Training.status.in_(OPEN_TRAINING_STATES)).order_by(Training.id)))
        return recover(job_id, status, pending_trainings=open_rows, open_trainings=len(open_rows))
    return recover(job_id, status or "")
