"""Response shapes of the dashboard's read endpoints (`api.routes.views`).

Kept apart from `api.schemas` (the core API's shapes): these exist so the browser gets
aggregates (a histogram, per-epoch curves) instead of every row of a 15,625-candidate job.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from .schemas import CandidateBase


class Me(BaseModel):
    """The caller, as the token says."""

    name: str
    admin: bool
    max_jobs: int | None
    max_candidates: int | None


class HistogramBin(BaseModel):
    lo: float
    hi: float
    count: int


class Histogram(BaseModel):
    proxy: str = Field(description="the job's ranking proxy (whose score is binned)")
    scale: str = Field(description="'linear' or 'log' (bins of equal width in log10 of the score)")
    bins: list[HistogramBin] = Field(description="equal-width bins from min to max; the last one includes max")
    count: int = Field(description="scores binned (scored candidates with a finite score)")
    missing: int = Field(description="candidates not binned: pending, failed, or a non-finite score")
    min: float | None
    max: float | None
    threshold: float | None = Field(description="score of the top_k-th ranked candidate: the cut for the final stage")


class TrainingView(BaseModel):
    candidate_id: int
    rank: int | None
    arch: str
    arch_index: int
    score: float | None
    params: int | None
    mode: str = Field(description="train or benchmark")
    status: str = Field(description="pending, running, done or failed")
    epochs: list[dict[str, Any]] = Field(description="per-epoch metrics: epoch, train_loss, train_acc, valid_loss, "
                                                     "valid_acc, lr, seconds (a benchmark look-up has one record)")
    valid_acc: float | None
    test_acc: float | None
    seconds: float | None
    worker: str | None
    error: str | None
    started_at: datetime | None
    finished_at: datetime | None


class GenerationStats(BaseModel):
    generation: int
    candidates: int = Field(description="candidates bred into (or drawn for, generation 0) this generation")
    scored: int = Field(description="of them with a score")
    best: float | None = Field(description="highest score in the generation (None until scored; for a rank "
                                           "aggregate such as the ensemble, once the job is ranked)")
    median: float | None


class GenerationsView(BaseModel):
    """Evolution jobs: fitness per generation (empty for other strategies)."""

    proxy: str
    current: int | None = Field(description="the generation being scored (None: not an evolution job)")
    data: list[GenerationStats]


class TrainingsView(BaseModel):
    data: list[TrainingView] = Field(description="the job's top-k trainings, best rank first")
    n: int = Field(description="trainings with an accuracy (the points of the score-vs-accuracy scatter)")
    kendall: float | None = Field(description="Kendall tau of proxy score vs valid accuracy over those n "
                                              "(None below 2 points or with constant input)")


class CandidateDetail(CandidateBase):
    """One candidate in full (the dashboard's candidate page)."""

    energy_j: float | None
    scorer_version: str | None
    scored_at: datetime | None
    training: TrainingView | None = Field(description="its final-stage training, if it was in the top-k")
