"""ensemble: rank aggregation of several proxies over a job's whole candidate set.

AZ-NAS (Lee & Ham, CVPR 2024) style: for each component proxy, rank the
candidates (1 = worst ... N = best, ties averaged) and sum log(rank / N)
over components. Nothing is fitted to benchmark labels: the components are
chosen a priori, before measuring them on NAS-Bench-201: AZ-NAS's own four
(expressivity, progressivity, trainability, and complexity = flops), plus
the gradient-kernel family this product is built on, the KNAS kernel itself
(mgm) and its strongest published member (zico, gradient signal-to-noise).
Per candidate only the components are computed; the aggregate needs the
whole set, so it is formed in the ranking step (`aggregate`).
"""
from __future__ import annotations

import math
from typing import Mapping, Sequence

import numpy as np
from scipy.stats import rankdata

from .registry import PROXIES

COMPONENTS = PROXIES.info("ensemble").components  # declared with its metadata (scorer/proxies/registry.py)


def _ranks(values: Sequence[float]) -> list[float]:
    """1-based ascending ranks with ties averaged (scipy's `rankdata`); non-finite values (NaN, +-inf: a
    component that diverged) rank lowest, tied with each other."""
    x = np.asarray(values, dtype=np.float64)
    return rankdata(np.where(np.isfinite(x), x, -np.inf), method="average").tolist()


def aggregate(component_scores: Mapping[str, Sequence[float]]) -> list[float]:
    """Sum over components of log(rank / N); higher is better. All sequences align by candidate."""
    lengths = {len(v) for v in component_scores.values()}
    if len(lengths) != 1:
        raise ValueError("every component needs one score per candidate")
    (n,) = lengths
    total = [0.0] * n
    for values in component_scores.values():
        for i, r in enumerate(_ranks([float(v) for v in values])):
            total[i] += math.log(r / n)
    return total


def ensemble(net, inputs, targets) -> float:
    raise TypeError("ensemble ranks a whole candidate set: score its components per candidate "
                    "(scorer.scoring.score_arch does) and combine them with ensemble.aggregate")
