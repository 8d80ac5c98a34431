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

from .registry import PROXIES

COMPONENTS = PROXIES.info("ensemble").components  # declared with its metadata (scorer/proxies/registry.py)


def _ranks(values: Sequence[float]) -> list[float]:
    """1-based ascending ranks with ties averaged (non-finite values rank lowest)."""
    keyed = sorted(range(len(values)), key=lambda i: (math.isfinite(values[i]), values[i]))
    ranks = [0.0] * len(values)
    i = 0
    while i < len(keyed):
        j = i
        while j + 1 < len(keyed) and values[keyed[j + 1]] == values[keyed[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[keyed[k]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


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
