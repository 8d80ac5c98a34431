"""ZiCo and jacov against direct numpy computations of their published formulas."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from scorer.proxies import get_proxy
from scorer.proxies.jacov import jacobian_score
from scorer.proxies.zico import zico_score


def test_zico_formula_matches_numpy():
    rng = np.random.default_rng(0)
    layers = [rng.normal(size=(2, 5)), rng.normal(size=(2, 3))]
    layers[1][:, 0] = 1.0  # a weight with zero std is left out
    expected = 0.0
    for g in layers:
        std, mean_abs = g.std(axis=0), np.abs(g).mean(axis=0)
        keep = std != 0
        expected += np.log((mean_abs[keep] / std[keep]).sum())
    per_batch = [[torch.tensor(g[b]) for g in layers] for b in range(2)]
    assert zico_score(per_batch) == pytest.approx(expected, rel=1e-12)


def test_zico_uses_gradients_of_each_mini_batch():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(12, 3))
    x, y = torch.randn(8, 3, 2, 2), torch.randint(0, 3, (8,))
    grads = []
    for xb, yb in zip(x.chunk(2), y.chunk(2)):
        net.zero_grad()
        nn.functional.cross_entropy(net(xb), yb).backward()
        grads.append([net[1].weight.grad.clone()])
    assert get_proxy("zico")(net, x, y) == pytest.approx(zico_score(grads), rel=1e-9)


def test_jacov_formula_matches_numpy():
    rng = np.random.default_rng(1)
    jac = rng.normal(size=(6, 20))
    v = np.linalg.eigvalsh(np.corrcoef(jac))
    expected = -np.sum(np.log(v + 1e-5) + 1.0 / (v + 1e-5))
    assert jacobian_score(torch.tensor(jac)) == pytest.approx(expected, rel=1e-9)


def test_jacov_prefers_nets_that_tell_samples_apart():
    """A linear net has the same Jacobian for every sample (perfectly correlated): the worst score."""
    torch.manual_seed(0)
    x = torch.randn(6, 3, 4, 4)
    linear = nn.Sequential(nn.Flatten(), nn.Linear(48, 4))
    nonlinear = nn.Sequential(nn.Flatten(), nn.Linear(48, 64), nn.ReLU(), nn.Linear(64, 4))
    jacov = get_proxy("jacob_cov")
    assert jacov(nonlinear, x, None) > jacov(linear, x, None)
