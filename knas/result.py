"""What a finished job found: `JobResult`, the typed shape of `jobs.result`.

Written by the pipeline when a job closes (worker/pipeline.py builds it, the store keeps its JSON)
and sent by the API as it is (api/schemas.py uses these models), so its keys are documented once,
here. Torch-free. Every field has a default, so a result stored by an older version (or a partial
one) still reads; a field of the wrong type is an error, not passed on.
"""
from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field


class CandidateSummary(BaseModel):
    """A top-k candidate: its place in the ranking and, once trained, its accuracy."""

    candidate_id: int
    rank: int | None
    arch: str
    arch_index: int | None = None
    score: float | None = None
    score_std: float | None = None
    params: int | None = None
    valid_acc: float | None = Field(default=None, description="None: not trained (final.mode=none) or not yet")
    test_acc: float | None = None
    training_status: str | None = None


class ComputeReport(BaseModel):
    """Compute spent by stage, and what training every candidate would have cost (worker/report.py)."""

    device: str
    scoring_seconds: float
    training_seconds: float
    scoring_seconds_per_candidate: float | None = None
    training_seconds_per_candidate: float | None = None
    energy_joules: float | None = None
    energy_source: str = "unknown"
    scoring_to_training_ratio: float | None = None
    train_every_candidate_seconds: float | None = None
    seconds_saved: float | None = None
    speedup_vs_training_all: float | None = None


class Validity(BaseModel):
    """How well the proxy ranked the trained top-k (rank correlations against measured accuracy)."""

    n: int
    available: bool
    note: str
    proxy: str | None = None
    kendall: float | None = None
    spearman: float | None = None
    params_kendall: float | None = None
    params_spearman: float | None = None


class NearTie(BaseModel):
    rank: int | None
    arch: str
    candidate_id: int
    score: float | None
    score_std: float | None


class Cut(BaseModel):
    """How decisive the top-k cut is, given the score's spread over proxy.repeats."""

    repeats: int
    note: str
    near_ties: list[NearTie] | None = Field(default=None, description="None: the spread is unknown (one repeat)")
    near_ties_total: int | None = None
    kth_score: float | None = None
    kth_std: float | None = None


class Retraining(BaseModel):
    """The winner's retraining (final.retrain_epochs)."""

    candidate_id: int
    status: str
    epochs: int
    valid_acc: float | None = None
    test_acc: float | None = None
    seconds: float | None = None
    error: str | None = None


class ExportInfo(BaseModel):
    """The winner's exported bundle (`GET /v1/jobs/{id}/export`), or why there is none."""

    status: str = Field(description="ready, unavailable or failed")
    reason: str | None = None
    candidate_id: int | None = None
    files: list[str] | None = None
    bytes: int | None = None
    test_acc: float | None = None
    export_check: dict[str, Any] | None = None


class JobResult(BaseModel):
    """The winner, the top-k, how well the proxy ranked them and what the search cost."""

    winner: CandidateSummary | None = None
    selected_by: str | None = Field(default=None, description="valid_acc (the top-k were trained) or score")
    top_k: list[CandidateSummary] = Field(default_factory=list)
    compute_seconds: dict[str, float] = Field(default_factory=dict, description="scoring, training")
    compute: ComputeReport | None = None
    validity: Validity | None = None
    cut: Cut | None = None
    retrain: Retraining | None = None
    scorer_version: str | None = None
    export: ExportInfo | None = None

    def stored(self) -> dict[str, Any]:
        """The JSON the store keeps in `jobs.result`."""
        return self.model_dump(mode="json")
