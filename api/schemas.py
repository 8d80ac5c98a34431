"""What the API sends back: pydantic models kept apart from the ORM classes.

Requests are `knas.jobspec.JobSpec` (shared with the CLI and workers); these
are the response shapes. Times are UTC (naive ISO 8601, as the store keeps them).
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from knas.result import JobResult


class Progress(BaseModel):
    """Counts over the job's candidates and trainings (computed on read, never stored)."""

    candidates: int
    scored: int
    failed: int
    pending: int
    trained: int
    training: int
    training_failed: int


class JobPublic(BaseModel):
    id: str
    owner: str | None
    status: str = Field(description="queued, scoring, ranking, training, succeeded, failed or cancelled")
    priority: int
    space: str
    dataset: str
    proxy: str
    n_candidates: int
    top_k: int
    spec: dict[str, Any] = Field(description="the job spec as stored (names made canonical)")
    progress: Progress
    created_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    timings: dict[str, Any] = Field(description="stage -> {started, finished, seconds}")
    error: str | None
    result: JobResult | None = Field(description="what the job found (when finished): knas/result.py")


class JobsPublic(BaseModel):
    data: list[JobPublic]
    count: int = Field(description="jobs matching the filters, over all pages")


class CandidateBase(BaseModel):
    """What every view of a candidate shows: its identity, its scores and who computed them."""

    id: int
    rank: int | None
    arch: str
    arch_index: int
    status: str
    score: float | None
    score_std: float | None = Field(default=None, description="spread of the score over proxy.repeats (None: 1 repeat)")
    scores: dict[str, Any] | None = Field(description="every proxy computed for it, by name")
    params: int | None
    proxy_seconds: float | None
    worker: str | None
    error: str | None


class CandidatePublic(CandidateBase):
    """A row of the ranked candidates list."""

    valid_acc: float | None
    test_acc: float | None
    training_status: str | None


class CandidatesPublic(BaseModel):
    data: list[CandidatePublic]
    count: int = Field(description="candidates of the job, over all pages")


class SpacePublic(BaseModel):
    name: str
    size: int
    description: str
    example: str
    aliases: list[str]


class ProxyPublic(BaseModel):
    name: str
    description: str
    aliases: list[str]


class DatasetPublic(BaseModel):
    name: str
    num_classes: int
    in_shape: tuple[int, int, int]
    embedded: bool
    present: bool = Field(description="whether its files are on this server (embedded sets always are)")
    benchmark: bool = Field(description="whether NATS-Bench has records for it (final.mode=benchmark)")
    aliases: list[str]
    kind: str = Field(default="built-in", description="'built-in' or 'image-folder' (registered without code)")
    classes: list[str] | None = Field(default=None, description="class names in label order (image folders)")
    counts: dict[str, dict[str, int]] | None = Field(default=None, description="split -> class -> images")
    mean: list[float] | None = None
    std: list[float] | None = None
    fingerprint: str | None = Field(default=None, description="hash of the folder's files (jobs record it)")
    valid_source: str | None = Field(default=None, description="'folder' (valid/) or 'held-out' (10 % of train)")
    path: str | None = Field(default=None, description="the folder on the server (admins only)")
    created_by: str | None = None
    created_at: datetime | None = None


class DatasetCreate(BaseModel):
    """Register an image folder (torchvision ImageFolder layout) as a dataset (admins)."""

    model_config = {"extra": "forbid"}
    name: str = Field(min_length=1, max_length=64, description="lower-case letters, digits, '.', '_', '-'")
    path: str = Field(min_length=1, max_length=4096, description="a folder under one of KNAS_DATA_DIR's directories")
    image_size: int | None = Field(default=None, ge=8, le=512, description="resize to S x S (default: the median "
                                                                            "size if <= 64 px, else 64)")
    channels: int | None = Field(default=None, ge=1, le=3, description="1 or 3 (default: the images')")


class WorkerPublic(BaseModel):
    name: str
    hostname: str
    device: str
    current_job: str | None
    started_at: datetime
    last_seen: datetime
    alive: bool = Field(description="seen within 3 sweep intervals")


class Health(BaseModel):
    status: str = Field(description="'ok' or 'unavailable'")
    database: str = Field(description="'ok' or why it failed")
    broker: str = Field(description="'ok', 'in-process' (embedded queue) or why it failed")


class FieldError(BaseModel):
    loc: list[str | int] = Field(description="where: 'body' then the field path, or 'query'/'path' and the name")
    msg: str
    type: str


class Problem(BaseModel):
    """Every error body (RFC 9457 style): a one-line `detail` a person can act on."""

    title: str
    status: int
    detail: str
    errors: list[FieldError] | None = Field(default=None, description="one entry per invalid field (422 only)")


# A route's documented answers besides its own (`responses=`), typed as FastAPI's decorators take them.
Responses = dict[int | str, dict[str, Any]]
