"""Cheap reads of a job that is moving: ETags (304 when nothing changed) and the event stream.

Both rest on the job's *version*, one small query: the job row's `updated_at` and `status`, plus
the newest finished training and the number of trainings. The pipeline touches `jobs.updated_at`
on every stored score, epoch and transition (`models.repository.touch` and `.transition`;
the ORM's `onupdate` covers every other UPDATE of the row); a training's result is stored on its
own row, which the two training columns cover. Whatever a job or candidate read answers can only
change when the version does.
"""
from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Iterable, Literal

import anyio
from fastapi import Request
from sqlalchemy import Connection, Row, bindparam, func, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from models import FINAL_STATES, JOB_STATES, Job, Store, Training
from models.queries import SUMMARY_COLUMNS, job_summary
from models.users import Principal


log = logging.getLogger(__name__)

ETAG_SCHEME = "1"  # bump when a response's shape changes, so no client keeps an old body
PROGRESS_KEYS = ("candidates", "scored", "failed", "pending", "trained", "training", "training_failed")


# ---------------------------------------------------------------- the version

def _training_columns():
    finished = select(func.max(Training.finished_at)).where(Training.job_id == Job.id).scalar_subquery()
    trainings = select(func.count(Training.id)).where(Training.job_id == Job.id).scalar_subquery()
    return finished.label("last_finished"), trainings.label("n_trainings")


def version_query(job_id: str):
    return select(Job.updated_at, Job.status, *_training_columns()).where(Job.id == job_id)


# Built once: a status poll only binds its parameters (building the subqueries cost more than running them).
_ANY_JOB = select(*SUMMARY_COLUMNS, *_training_columns()).where(Job.id == bindparam("job_id"))
_OWN_JOB = _ANY_JOB.where(Job.owner == bindparam("owner"))


def versioned_job(connection: Connection | Session, job_id: str, user: Principal) -> tuple[Row, tuple] | None:
    """The job (a row of `SUMMARY_COLUMNS`) and its version in one query, if `user` may see it.

    A status poll is this one indexed read: visibility, the ETag's version and the answer's body
    (its progress comes from the row's counters) all come from the same row.
    """
    if user.admin:
        row = connection.execute(_ANY_JOB, {"job_id": job_id}).first()
    else:
        row = connection.execute(_OWN_JOB, {"job_id": job_id, "owner": user.name}).first()
    if row is None:
        return None
    return row, (row.updated_at, row.status, row.last_finished, row.n_trainings)


def etag(kind: str, job_id: str, version: tuple, **params: Any) -> str:
    """A weak ETag for `kind` of the job at `version`, answered with `params` (format, limit, ...)."""
    parts = [ETAG_SCHEME, kind, job_id, *(v.isoformat() if hasattr(v, "isoformat") else str(v) for v in version),
             *(f"{k}={params[k]}" for k in sorted(params))]
    return 'W/"' + hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:32] + '"'


def not_modified(if_none_match: str | None, tag: str) -> bool:
    """RFC 9110 If-None-Match: weak comparison against each listed tag, or '*'."""
    if not if_none_match:
        return False
    if if_none_match.strip() == "*":
        return True
    bare = tag.removeprefix("W/")
    return any(candidate.strip().removeprefix("W/") == bare for candidate in if_none_match.split(","))


CACHE_HEADERS = {"Cache-Control": "private, no-cache", "Vary": "Authorization"}


# ---------------------------------------------------------------- the event stream

@dataclass
class Cursor:
    """What a client has been sent: the SSE event id, written and parsed here.

    `<status>:<progress counts>:<training>.<epochs>,...[:end]`, e.g. `training:5-5-0-0-1-2-0:7.3,8.1`.
    Every part comes from durable state (the job's status, its progress counts, how many epochs each
    training has stored), so a client reconnecting with Last-Event-ID is sent exactly what differs.
    Each event moves one part (progress the counts, stage the status, epoch one training's count,
    end the flag), so no two events of a job share an id.
    """

    status: str | None = None
    progress: tuple[int, ...] | None = None
    epochs: dict[int, int] = field(default_factory=dict)
    ended: bool = False

    def encode(self) -> str:
        progress = "-".join(str(n) for n in self.progress) if self.progress is not None else ""
        epochs = ",".join(f"{t}.{n}" for t, n in sorted(self.epochs.items()))
        return f"{self.status or ''}:{progress}:{epochs}" + (":end" if self.ended else "")

    @classmethod
    def parse(cls, text: str | None) -> "Cursor":
        """A cursor from Last-Event-ID; anything unreadable is a fresh start (everything is sent once)."""
        if not text:
            return cls()
        try:
            parts = text.strip().split(":")
            if len(parts) not in (3, 4) or (len(parts) == 4 and parts[3] != "end"):
                raise ValueError(text)
            status, progress, epochs = parts[:3]
            if status and status not in JOB_STATES:
                raise ValueError(status)
            counts = tuple(int(n) for n in progress.split("-")) if progress else None
            if counts is not None and len(counts) != len(PROGRESS_KEYS):
                raise ValueError(progress)
            seen = {int(t): int(n) for t, n in (pair.split(".") for pair in epochs.split(",") if pair)}
            return cls(status or None, counts, seen, len(parts) == 4)
        except ValueError:
            return cls()


@dataclass
class Snapshot:
    version: tuple
    summary: dict[str, Any]
    trainings: list[tuple[int, int, str, list[dict[str, Any]]]]  # (id, candidate id, mode, epochs)


def load_snapshot(store: Store, job_id: str, seen: tuple | None) -> Snapshot | None | Literal[False]:
    """The job as the stream shows it; None if its version is `seen` (one small query); False if it is gone."""
    with store.session() as session:
        row = session.execute(version_query(job_id)).first()
        if row is None:
            return False
        if tuple(row) == seen:
            return None
        job = session.get(Job, job_id)
        if job is None:  # deleted since the version was read
            return False
        trainings = session.execute(select(Training.id, Training.candidate_id, Training.mode, Training.epochs)
                                    .where(Training.job_id == job_id).order_by(Training.id)).all()
        return Snapshot(tuple(row), job_summary(job), [tuple(t) for t in trainings])


def format_event(kind: str | None, data: str, event_id: str | None = None) -> str:
    lines = [f"id: {event_id}"] if event_id is not None else []
    if kind:
        lines.append(f"event: {kind}")
    lines += [f"data: {line}" for line in data.splitlines() or [""]]
    return "\n".join(lines) + "\n\n"


def changes(cursor: Cursor, snapshot: Snapshot) -> Iterable[tuple[str, dict[str, Any]]]:
    """The events that take `cursor` to `snapshot`, advancing it as each one is yielded."""
    job = snapshot.summary
    for training_id, candidate_id, mode, epochs in snapshot.trainings:
        sent = cursor.epochs.get(training_id, 0)
        for number, metrics in enumerate((epochs or [])[sent:], start=sent + 1):
            cursor.epochs[training_id] = number  # a training resumed from an older checkpoint is not sent twice
            yield "epoch", {"job_id": job["id"], "training_id": training_id, "candidate_id": candidate_id,
                            "mode": mode, **metrics}
    # Each event moves its own part of the cursor, so every event has an id of its own (resume is exact).
    counts = tuple(int(job["progress"].get(key, 0)) for key in PROGRESS_KEYS)
    if counts != cursor.progress:
        cursor.progress = counts
        yield "progress", {"job_id": job["id"], "status": job["status"], "progress": job["progress"]}
    if job["status"] != cursor.status:
        previous, cursor.status = cursor.status, job["status"]
        yield "stage", {"job_id": job["id"], "status": job["status"], "previous": previous,
                        "timings": job.get("timings") or {}}
    if job["status"] in FINAL_STATES and not cursor.ended:
        cursor.ended = True
        yield "end", {"job_id": job["id"], "status": job["status"], "error": job.get("error"),
                      "finished_at": job.get("finished_at"), "progress": job["progress"]}


async def job_events(request: Request, store: Store, job_id: str, cursor: Cursor, poll: float,
                     keepalive: float, lifetime: float) -> AsyncIterator[str]:
    """Server-sent events for one job until it ends, the client goes, or `lifetime` seconds pass."""
    import json

    yield f"retry: {int(max(poll, 1) * 2000)}\n\n"  # how long a browser's EventSource waits to reconnect
    start = last_write = time.monotonic()
    seen: tuple | None = None
    while True:
        try:
            snapshot = await run_in_threadpool(load_snapshot, store, job_id, seen)
        except DBAPIError as error:  # the store is away: end here, the client reconnects with Last-Event-ID
            log.warning("event stream of job %s: database error, closing: %s", job_id, error)
            return
        if snapshot is False:  # deleted while watched
            return
        if snapshot is not None:
            seen = snapshot.version
            for kind, data in changes(cursor, snapshot):
                yield format_event(kind, json.dumps(data, separators=(",", ":")), cursor.encode())
                last_write = time.monotonic()
            if cursor.ended:
                return
        now = time.monotonic()
        if now - last_write >= keepalive:
            yield ": keep-alive\n\n"
            last_write = now
        if now - start >= lifetime or await request.is_disconnected():
            return
        await anyio.sleep(poll)
