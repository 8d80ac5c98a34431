"""What a finished job tells its user: how well the proxy ranked, and what the search cost.

Pure functions over plain numbers (torch-free), called when a job closes.
"""
from __future__ import annotations

from typing import Any, Sequence

from knas.result import ComputeReport, Validity
from scorer.correlation import rank_correlations

MIN_VALIDITY_SAMPLES = 5


def validity(scores: Sequence[float], params: Sequence[float], accuracies: Sequence[float],
             proxy: str) -> Validity:
    """Kendall tau / Spearman rho of proxy score and of parameter count against measured accuracy."""
    n = len(accuracies)
    if n < MIN_VALIDITY_SAMPLES:
        return Validity(n=n, available=False,
                        note=f"needs at least {MIN_VALIDITY_SAMPLES} candidates with an accuracy (top_k >= 5)")
    kendall, spearman = rank_correlations(scores, accuracies)
    params_kendall, params_spearman = rank_correlations(params, accuracies)
    if kendall is not None and params_kendall is not None and kendall < params_kendall:
        note = (f"on these {n} candidates {proxy} ranked worse than parameter count "
                f"(Kendall tau {kendall} vs {params_kendall})")
    else:
        note = f"{proxy} ranked these {n} candidates at Kendall tau {kendall}"
    return Validity(n=n, available=True, proxy=proxy, kendall=kendall, spearman=spearman,
                    params_kendall=params_kendall, params_spearman=params_spearman, note=note)


def compute(scoring_seconds: float, n_scored: int, training_seconds: float, n_trained: int,
            n_candidates: int, device: str, energy: dict[str, Any] | None = None) -> ComputeReport:
    """Compute spent by stage, and the 'train every candidate' cost the search avoided."""
    per_score = scoring_seconds / n_scored if n_scored else None
    per_train = training_seconds / n_trained if n_trained else None
    report = ComputeReport(
        device=device,
        scoring_seconds=round(scoring_seconds, 3),
        training_seconds=round(training_seconds, 3),
        scoring_seconds_per_candidate=round(per_score, 5) if per_score is not None else None,
        training_seconds_per_candidate=round(per_train, 3) if per_train is not None else None,
        energy_joules=(energy or {}).get("joules"),
        energy_source=(energy or {}).get("source", "unknown"),
    )
    if per_score and per_train:
        train_all = per_train * n_candidates
        spent = scoring_seconds + training_seconds
        report.scoring_to_training_ratio = round(per_score / per_train, 6)
        report.train_every_candidate_seconds = round(train_all, 3)
        report.seconds_saved = round(train_all - spent, 3)
        report.speedup_vs_training_all = round(train_all / spent, 2) if spent else None
    return report
