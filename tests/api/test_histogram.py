"""The dashboard's score histogram (api.routes.views.bin_scores, numpy.histogram underneath)."""
from __future__ import annotations

import random

from api.routes.views import bin_scores


def reference(values, bins):
    """Equal-width bins, half-open but for the last, counted by hand."""
    lo, hi = min(values), max(values)
    width = (hi - lo) / bins
    counts = [0] * bins
    for v in values:
        counts[min(int((v - lo) / width), bins - 1)] += 1
    return counts


def test_linear_bins_match_a_hand_count_and_close_on_the_max():
    rng = random.Random(0)
    scores = [rng.gauss(0, 1) for _ in range(1000)]
    out = bin_scores(scores, 20)
    assert [b.count for b in out] == reference(scores, 20)
    assert out[0].lo == min(scores) and out[-1].hi == max(scores) and sum(b.count for b in out) == len(scores)
    assert all(a.hi == b.lo for a, b in zip(out, out[1:]))


def test_log_bins_count_decades_and_keep_the_data_ends():
    scores = [1.0, 10.0, 100.0, 1000.0, 5.0, 50.0]
    out = bin_scores(scores, 3, log=True)
    assert [b.count for b in out] == [2, 2, 2]
    assert out[0].lo == 1.0 and out[-1].hi == 1000.0
    assert abs(out[1].lo - 10.0) < 1e-9 and abs(out[2].lo - 100.0) < 1e-9


def test_constant_and_empty_inputs():
    assert bin_scores([], 10) == []
    (only,) = bin_scores([2.5, 2.5, 2.5], 10)
    assert (only.lo, only.hi, only.count) == (2.5, 2.5, 3)
