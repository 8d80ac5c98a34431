"""The rank-aggregating ensemble: log-rank sums, ties, and per-component scoring."""
from __future__ import annotations

import math

import pytest
import torch

from scorer.proxies import get_proxy
from scorer.proxies.ensemble import COMPONENTS, _ranks, aggregate
from scorer.scoring import score_arch


def test_ranks_ascending_with_ties_averaged_and_nonfinite_lowest():
    assert _ranks([3.0, 1.0, 2.0]) == [3.0, 1.0, 2.0]
    assert _ranks([1.0, 5.0, 5.0, 0.0]) == [2.0, 3.5, 3.5, 1.0]
    assert _ranks([float("-inf"), 0.0]) == [1.0, 2.0]
    assert _ranks([2.0, float("nan"), float("inf"), 1.0]) == [4.0, 1.5, 1.5, 3.0]  # non-finite: lowest, tied


def test_aggregate_is_the_sum_of_log_ranks():
    scores = {"a": [1.0, 2.0, 3.0], "b": [30.0, 10.0, 20.0]}
    expected = [math.log(1 / 3) + math.log(3 / 3), math.log(2 / 3) + math.log(1 / 3),
                math.log(3 / 3) + math.log(2 / 3)]
    assert aggregate(scores) == pytest.approx(expected)


def test_aggregate_agrees_with_unanimous_components_and_rejects_ragged_input():
    combined = aggregate({"a": [1, 2, 3, 4], "b": [10, 20, 30, 40]})
    assert sorted(range(4), key=combined.__getitem__) == [0, 1, 2, 3]
    with pytest.raises(ValueError):
        aggregate({"a": [1, 2], "b": [1]})


def test_ensemble_is_scored_by_its_components():
    proxy = get_proxy("ensemble")
    assert proxy.components == COMPONENTS
    x, y = torch.randn(4, 3, 8, 8), torch.randint(0, 10, (4,))
    arch = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
    result = score_arch("nats-tss", arch, "ensemble", x, y, seed=1, num_classes=10)
    assert result.score is None and set(result.scores) == set(COMPONENTS)
    alone = score_arch("nats-tss", arch, "mgm", x, y, seed=1, num_classes=10)
    assert result.scores["mgm"] == pytest.approx(alone.score, rel=1e-6)  # same seeded net per component
    with pytest.raises(TypeError, match="whole candidate set"):
        proxy(None, x, y)
