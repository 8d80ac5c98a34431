"""The one rank-correlation helper: scipy's tau-b and rho, None where undefined."""
from __future__ import annotations

import pytest

from scorer.correlation import rank_correlations


def test_perfect_reversed_and_tied_orders():
    assert rank_correlations([1, 2, 3, 4], [10, 20, 30, 40]) == (1.0, 1.0)
    assert rank_correlations([1, 2, 3, 4], [4, 3, 2, 1]) == (-1.0, -1.0)
    tau, rho = rank_correlations([1, 2, 2, 3], [1, 3, 2, 4])  # a tie in x: tau-b = 5/sqrt(5*6), not tau-a = 5/6
    assert tau == pytest.approx(0.9129, abs=1e-4) and rho == pytest.approx(0.9487, abs=1e-4)


def test_undefined_is_none_not_nan():
    assert rank_correlations([1.0], [2.0]) == (None, None)
    assert rank_correlations([1, 1, 1], [1, 2, 3]) == (None, None)  # constant input


def test_rounding():
    x, y = [0.1, 0.5, 0.3, 0.9, 0.7], [1, 3, 2, 4, 6]
    exact = rank_correlations(x, y, digits=None)
    assert rank_correlations(x, y) == tuple(round(v, 4) for v in exact)
    assert exact[0] == pytest.approx(0.8) and exact[1] == pytest.approx(0.9)
