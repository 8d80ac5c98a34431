"""Read endpoints for the dashboard: a score histogram, training curves, one candidate, the caller.

Each answers with an aggregate or a single row, so a page about a 15,625-candidate job stays
small; the ranked table itself pages through `GET /v1/jobs/{id}/candidates`.
"""
from __future__ import annotations

import math
import statistics
from typing import Annotated, Literal, Sequence

from fastapi import APIRouter, HTTPException, Path, Query, Response, status
from sqlalchemy import and_, func, select

from models import RETRAIN, Candidate, Training
from scorer.correlation import rank_correlations

from ..deps import CurrentUser, JobIdDep, StoreDep, job_row
from ..schemas import Problem, Responses
from ..view_schemas import (
    CandidateDetail, GenerationStats, GenerationsView, Histogram, HistogramBin, Me, TrainingsView, TrainingView,
)

router = APIRouter(prefix="/v1/jobs", tags=["views"])
me_router = APIRouter(prefix="/v1", tags=["views"])

NOT_FOUND: Responses = {404: {"model": Problem, "description": "no such job (or candidate)"}}


@me_router.get("/me", response_model=Me)
async def whoami(user: CurrentUser) -> Me:
    """Who the token belongs to (the dashboard shows it, and hides admin-only filters).

    `async`: it does no I/O, and a threadpool hop per request cost more than the answer (under load,
    with two API processes on two cores, the hop's GIL hand-offs put p99 above a second)."""
    return Me(name=user.name, admin=user.admin, max_jobs=user.max_jobs, max_candidates=user.max_candidates)


def bin_scores(scores: Sequence[float], bins: int, log: bool = False) -> list[HistogramBin]:
    """Equal-width bins from min to max (in log10 when `log`; the last bin includes max); one bin if all equal."""
    if not scores:
        return []
    import numpy as np  # torch-free

    values = np.log10(scores) if log else np.asarray(scores, dtype=float)
    if values.min() == values.max():
        return [HistogramBin(lo=min(scores), hi=max(scores), count=len(scores))]
    counts, edges = np.histogram(values, bins=bins)
    edges = (10.0 ** edges) if log else edges
    edges[0], edges[-1] = min(scores), max(scores)  # exactly the data's ends, not their log round trip
    return [HistogramBin(lo=float(edges[i]), hi=float(edges[i + 1]), count=int(counts[i])) for i in range(bins)]


def choose_scale(scores: Sequence[float], scale: str) -> str:
    """'log' needs positive scores; 'auto' picks it when they also span two decades or more."""
    if scale == "linear" or not scores or min(scores) <= 0:
        return "linear"
    return "log" if scale == "log" or max(scores) / min(scores) >= 100 else "linear"


@router.get("/{job_id}/histogram", response_model=Histogram, responses=NOT_FOUND)
def histogram(
    job_id: JobIdDep, store: StoreDep,
    bins: Annotated[int, Query(ge=1, le=200)] = 30,
    scale: Annotated[Literal["auto", "linear", "log"], Query(description="log needs positive scores")] = "auto",
) -> Histogram:
    """Distribution of the job's proxy scores so far (only the scores travel from the database)."""
    with store.session() as session:
        job = job_row(session, job_id)
        values = session.scalars(select(Candidate.score).where(Candidate.job_id == job_id,
                                                               Candidate.status == "scored")).all()
        threshold = None
        if job.top_k:
            threshold = session.scalar(select(Candidate.score).where(Candidate.job_id == job_id,
                                                                     Candidate.rank == job.top_k))
        proxy, total = job.proxy, job.n_candidates
    finite = [v for v in values if v is not None and math.isfinite(v)]
    used = choose_scale(finite, scale)
    return Histogram(proxy=proxy, scale=used, bins=bin_scores(finite, bins, log=used == "log"), count=len(finite),
                     missing=total - len(finite), min=min(finite, default=None), max=max(finite, default=None),
                     threshold=threshold)


@router.get("/{job_id}/generations", response_model=GenerationsView, responses=NOT_FOUND)
def generations(job_id: JobIdDep, store: StoreDep) -> GenerationsView:
    """Best and median score per generation of an evolution job (the job page plots them)."""
    with store.session() as session:
        job = job_row(session, job_id)
        rows = session.execute(select(Candidate.generation, Candidate.score).where(
            Candidate.job_id == job_id, Candidate.generation.is_not(None))).all()
        proxy, current = job.proxy, job.generation
    by_generation: dict[int, list[float | None]] = {}
    for generation, score in rows:
        if generation is not None:  # (the query has only candidates with a generation)
            by_generation.setdefault(generation, []).append(score)
    data = []
    for generation in sorted(by_generation):
        scores = sorted(v for v in by_generation[generation] if v is not None and math.isfinite(v))
        data.append(GenerationStats(generation=generation, candidates=len(by_generation[generation]),
                                    scored=len(scores), best=scores[-1] if scores else None,
                                    median=statistics.median(scores) if scores else None))
    return GenerationsView(proxy=proxy, current=current, data=data)


def _training_view(candidate: Candidate, training: Training) -> TrainingView:
    return TrainingView(
        candidate_id=candidate.id, rank=candidate.rank, arch=candidate.arch, arch_index=candidate.arch_index,
        score=candidate.score, params=candidate.params, mode=training.mode, status=training.status,
        epochs=training.epochs or [], valid_acc=training.valid_acc, test_acc=training.test_acc,
        seconds=training.seconds, worker=training.worker, error=training.error,
        started_at=training.started_at, finished_at=training.finished_at,
    )


def kendall_tau(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Kendall tau-b, rounded as job reports round it; None when undefined (n < 2, constant input)."""
    return rank_correlations(x, y)[0]


@router.get("/{job_id}/trainings", response_model=TrainingsView, responses=NOT_FOUND)
def trainings(job_id: JobIdDep, store: StoreDep, response: Response,
              limit: Annotated[int, Query(ge=1, le=1000)] = 100,
              offset: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0) -> TrainingsView:
    """The top-k's training curves (per-epoch metrics) and how well the proxy score ranked them so far.

    Paged best rank first (`limit`, `offset`); `X-Total-Count` is the job's number of trainings, and
    `n`/`kendall` are over this page."""
    with store.session() as session:
        rows = session.execute(
            select(Candidate, Training).join(Training, Training.candidate_id == Candidate.id)
            .where(Training.job_id == job_id).order_by(Candidate.rank.asc().nulls_last(), Candidate.id)
            .limit(limit).offset(offset)
        ).all()
        response.headers["X-Total-Count"] = str(session.scalar(
            select(func.count()).select_from(Training).where(Training.job_id == job_id)))
        data = [_training_view(candidate, training) for candidate, training in rows]
    points = [(t.score, t.valid_acc) for t in data
              if t.score is not None and t.valid_acc is not None and t.mode != RETRAIN]  # the top-k only
    return TrainingsView(data=data, n=len(points),
                         kendall=kendall_tau([p[0] for p in points], [p[1] for p in points]))


@router.get("/{job_id}/candidates/{candidate_id}", response_model=CandidateDetail, responses=NOT_FOUND)
def candidate(job_id: JobIdDep, candidate_id: Annotated[int, Path(ge=1, le=2**31 - 1)],
              store: StoreDep) -> CandidateDetail:
    """One candidate: every proxy score, parameters, cost, and its training curve if it was trained."""
    with store.session() as session:
        row = session.execute(
            select(Candidate, Training)
            .outerjoin(Training, and_(Training.candidate_id == Candidate.id, Training.mode != RETRAIN))
            .where(Candidate.job_id == job_id, Candidate.id == candidate_id)
        ).first()
        if row is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"job {job_id} has no candidate {candidate_id}")
        c, t = row
        return CandidateDetail(
            id=c.id, rank=c.rank, arch=c.arch, arch_index=c.arch_index, status=c.status, score=c.score,
            score_std=c.score_std, scores=c.scores, params=c.params, proxy_seconds=c.proxy_seconds, energy_j=c.energy_j,
            scorer_version=c.scorer_version, worker=c.worker, error=c.error, scored_at=c.scored_at,
            training=_training_view(c, t) if t is not None else None,
        )
