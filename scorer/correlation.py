"""Rank correlation of a proxy's scores with accuracies: the one helper job reports, the dashboard
and the benchmarks share (torch-free; scipy's tau-b and rho, so ties count as the field counts them)."""
from __future__ import annotations

import math
import warnings
from typing import Sequence


def rank_correlations(x: Sequence[float], y: Sequence[float],
                      digits: int | None = 4) -> tuple[float | None, float | None]:
    """Kendall tau-b and Spearman rho of `x` against `y`, rounded to `digits` (None: as computed).

    None where a correlation is undefined: fewer than two points, or a constant input.
    """
    if len(x) < 2:
        return None, None
    from scipy.stats import kendalltau, spearmanr

    with warnings.catch_warnings():  # constant input: scipy warns and answers NaN; we answer None
        warnings.simplefilter("ignore")
        values = (kendalltau(x, y).statistic, spearmanr(x, y).statistic)
    return tuple(None if v is None or math.isnan(v) else (round(float(v), digits) if digits is not None else float(v))
                 for v in values)  # type: ignore[return-value]
