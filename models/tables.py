"""The store's tables: jobs, their candidates, the top-k trainings, and workers."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON, BigInteger, Boolean, DateTime, Float, ForeignKey, Index, Integer, String, Text, UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .base import Base, new_id, utcnow
from .clock import db_now

from .states import (  # noqa: F401  (the store's names for them)
    ACTIVE_STATES, CANDIDATE_STATES, FINAL_STATES, JOB_STATES, TRAINING_STATES, CandidateState, JobState,
    TrainingState,
)
RETRAIN = "retrain"  # trainings.mode of the winner's retraining (final.retrain_epochs); top-k rows: train | benchmark


class User(Base):
    """Someone with an API token. Only the token's SHA-256 is stored; the token is shown once."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    admin: Mapped[bool] = mapped_column(Boolean, default=False)
    max_jobs: Mapped[int | None] = mapped_column(Integer)  # concurrently active jobs; None = no limit
    max_candidates: Mapped[int | None] = mapped_column(Integer)  # per job; None = the server's KNAS_MAX_CANDIDATES
    max_training_epochs: Mapped[int | None] = mapped_column(Integer)  # per job; None = KNAS_MAX_TRAINING_EPOCHS
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime)


class Job(Base):
    __tablename__ = "jobs"
    __table_args__ = (UniqueConstraint("owner", "idempotency_key"),)
    # updated_at is the database's clock: an INSERT/UPDATE through the ORM reads it back (RETURNING), so a
    # Job used after its session closed still has it.
    __mapper_args__ = {"eager_defaults": True}

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    owner: Mapped[str | None] = mapped_column(String(64), index=True)
    status: Mapped[str] = mapped_column(String(16), default="queued", index=True)
    priority: Mapped[int] = mapped_column(Integer, default=0)
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    space: Mapped[str] = mapped_column(String(32))
    dataset: Mapped[str] = mapped_column(String(64))
    proxy: Mapped[str] = mapped_column(String(32))
    n_candidates: Mapped[int] = mapped_column(Integer, default=0)
    top_k: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, index=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime, default=db_now(), onupdate=db_now())  # the database's clock
    started_at: Mapped[datetime | None] = mapped_column(DateTime)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime)
    timings: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # stage -> {started, finished, seconds}
    error: Mapped[str | None] = mapped_column(Text)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # updated_at doubles as the job's progress clock (every stored score, epoch and transition touches it);
    # swept_at is when the sweep last re-enqueued its work, so lost work is re-sent once per lease, not per sweep.
    # Both are the database's clock (models/clock.py), as are trainings.heartbeat_at and workers.last_seen.
    swept_at: Mapped[datetime | None] = mapped_column(DateTime)
    # The client's Idempotency-Key header: a repeated POST with the same key returns this job.
    idempotency_key: Mapped[str | None] = mapped_column(String(128))
    # A registered dataset's record as the job saw it (path, fingerprint, classes, normalisation):
    # workers on any node rebuild the data from this, and the exported model card cites it.
    data: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # Evolution jobs: the generation being scored (0 = the random population); None for other strategies.
    generation: Mapped[int | None] = mapped_column(Integer)
    # Progress, counted in the same transaction as the change it counts (a stored score, a finished
    # training), so a read never recounts rows and a crash or redelivery cannot make it drift; the
    # top-k trainings only (not the winner's retraining).
    candidates_total: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    candidates_scored: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    candidates_failed: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    trainings_total: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    trainings_done: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    trainings_failed: Mapped[int] = mapped_column(Integer, default=0, server_default="0")

    candidates: Mapped[list["Candidate"]] = relationship(back_populates="job", cascade="all, delete-orphan")


class Candidate(Base):
    __tablename__ = "candidates"
    __table_args__ = (
        UniqueConstraint("job_id", "arch"),
        Index("ix_candidates_job_status", "job_id", "status"),
        Index("ix_candidates_job_rank", "job_id", "rank", "id"),  # a page in index order
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    arch: Mapped[str] = mapped_column(String(160))
    arch_index: Mapped[int] = mapped_column(BigInteger)  # mbv2's indices need 38 bits
    seed: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    score: Mapped[float | None] = mapped_column(Float)
    scores: Mapped[dict[str, Any] | None] = mapped_column(JSON)  # every proxy computed, by name (mean of repeats)
    score_std: Mapped[float | None] = mapped_column(Float)  # spread over proxy.repeats (None for one repeat)
    repeat_scores: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)  # per repeat, when repeats > 1
    params: Mapped[int | None] = mapped_column(BigInteger)
    proxy_seconds: Mapped[float | None] = mapped_column(Float)
    energy_j: Mapped[float | None] = mapped_column(Float)  # None where the machine has no energy counter
    scorer_version: Mapped[str | None] = mapped_column(String(16))
    rank: Mapped[int | None] = mapped_column(Integer)
    worker: Mapped[str | None] = mapped_column(String(128))
    error: Mapped[str | None] = mapped_column(Text)
    scored_at: Mapped[datetime | None] = mapped_column(DateTime)
    # Which scoring task holds it (fair share hands out a few chunks per job at a time); None = not sent yet.
    dispatch: Mapped[str | None] = mapped_column(String(36))
    # Evolution jobs: the generation that bred it, and its parents' candidate ids (None in generation 0).
    generation: Mapped[int | None] = mapped_column(Integer)
    parents: Mapped[list[int] | None] = mapped_column(JSON)
    cached: Mapped[bool | None] = mapped_column(Boolean)  # its scores came from the lab-wide score cache

    job: Mapped[Job] = relationship(back_populates="candidates")
    trainings: Mapped[list["Training"]] = relationship(back_populates="candidate", cascade="all, delete-orphan")


class Training(Base):
    """A top-k candidate's training (or benchmark look-up); the winner may have a second row, its retraining."""

    __tablename__ = "trainings"
    __table_args__ = (UniqueConstraint("candidate_id", "mode"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    candidate_id: Mapped[int] = mapped_column(ForeignKey("candidates.id", ondelete="CASCADE"))
    mode: Mapped[str] = mapped_column(String(16))  # train | benchmark | retrain
    status: Mapped[str] = mapped_column(String(16), default="pending")
    epochs: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)  # per-epoch metrics
    valid_acc: Mapped[float | None] = mapped_column(Float)
    test_acc: Mapped[float | None] = mapped_column(Float)
    seconds: Mapped[float | None] = mapped_column(Float)
    energy_j: Mapped[float | None] = mapped_column(Float)  # None where the machine has no energy counter
    worker: Mapped[str | None] = mapped_column(String(128))
    attempts: Mapped[int] = mapped_column(Integer, default=0)  # also the claim's fencing token
    error: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[datetime | None] = mapped_column(DateTime)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime)
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime)  # set on claim and after every epoch
    # The last finished epoch's checkpoint, relative to the artifact store (KNAS_ARTIFACT_DIR): a training
    # taken over after its worker died resumes from it, and the winner's is the exported model.
    artifact: Mapped[str | None] = mapped_column(String(255))
    checkpoint_epoch: Mapped[int | None] = mapped_column(Integer)

    candidate: Mapped[Candidate] = relationship(back_populates="trainings")


class Worker(Base):
    __tablename__ = "workers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    hostname: Mapped[str] = mapped_column(String(128))
    device: Mapped[str] = mapped_column(String(64))
    current_job: Mapped[str | None] = mapped_column(String(36))
    started_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
    last_seen: Mapped[datetime] = mapped_column(DateTime, default=db_now(), index=True)  # the database's clock


class DatasetRecord(Base):
    """A dataset registered without code (an image folder): what it is, where, and its fingerprint."""

    __tablename__ = "datasets"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[str] = mapped_column(String(32), default="image-folder")
    path: Mapped[str] = mapped_column(Text)
    fingerprint: Mapped[str] = mapped_column(String(64))
    summary: Mapped[dict[str, Any]] = mapped_column(JSON)  # classes, counts per split, size, channels, mean/std
    created_by: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)


class ScoreCacheEntry(Base):
    """A candidate's scores for one repeat, shared by every job (worker/score_cache.py says what the key holds)."""

    __tablename__ = "score_cache"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)  # sha256 of the key's fields
    space: Mapped[str] = mapped_column(String(32))
    arch: Mapped[str] = mapped_column(String(160))
    proxy: Mapped[str] = mapped_column(String(32))
    scores: Mapped[dict[str, Any]] = mapped_column(JSON)
    params: Mapped[int | None] = mapped_column(BigInteger)
    seconds: Mapped[float | None] = mapped_column(Float)
    hits: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow)
