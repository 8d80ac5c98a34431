"""mgm / mgm-offdiag (batched tricks) against the slow per-sample loops in reference.py.

Both sides run in float64: the identities are exact, and in float32 mgm-offdiag's
"all pairs minus the diagonal" cancels enough digits to drift ~1e-4 from the loop.
"""
from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from tests.scorer.reference import gram_mean_loop, gram_offdiag_loop
from scorer.proxies import get_proxy
from scorer.spaces import get_space

SHAPE, N, CLASSES = (3, 16, 16), 4, 10
CASES = [
    ("nats-tss", "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"),
    ("nats-tss", "|skip_connect~0|+|none~0|skip_connect~1|+|none~0|none~1|skip_connect~2|"),
    *[("nats-tss", arch) for arch in get_space("nats-tss").sample(7, 2)],
    ("nats-sss", "8:16:24:32:40"),
    ("nats-sss", "64:32:48:8:16"),
]
PAIRS = [("mgm", gram_mean_loop), ("mgm-offdiag", gram_offdiag_loop)]


def data(n: int = N, shape=SHAPE, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, *shape, generator=g, dtype=torch.float64)
    return x, torch.randint(0, CLASSES, (n,), generator=g)


def rel_diff(a: float, b: float) -> float:
    return abs(a - b) / max(abs(b), 1e-12)


@pytest.mark.parametrize("space,arch", CASES)
@pytest.mark.parametrize("name,reference", PAIRS)
def test_matches_per_sample_loop(space, arch, name, reference):
    torch.manual_seed(0)
    net = get_space(space).build(arch, num_classes=CLASSES, in_shape=SHAPE).double()
    inputs, targets = data()
    fast = get_proxy(name)(copy.deepcopy(net), inputs, targets)
    slow = reference(copy.deepcopy(net), inputs, targets)
    assert slow != 0.0
    assert rel_diff(fast, slow) <= 1e-4, (fast, slow)


def test_knas_alias():
    assert get_proxy("knas") is get_proxy("mgm")


@pytest.mark.parametrize("name,reference", PAIRS)
def test_gram_identity_without_batchnorm(name, reference):
    torch.manual_seed(2)
    net = nn.Sequential(
        nn.Conv2d(3, 6, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(6, 8, 3, stride=2),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(8, CLASSES),
    ).double()
    inputs, targets = data(6, (3, 8, 8), seed=3)
    fast = get_proxy(name)(copy.deepcopy(net), inputs, targets)
    slow = reference(copy.deepcopy(net), inputs, targets)
    assert rel_diff(fast, slow) <= 1e-4, (fast, slow)


def test_offdiag_needs_two_samples():
    net = nn.Sequential(nn.Flatten(), nn.Linear(12, CLASSES))
    with pytest.raises(ValueError):
        get_proxy("mgm-offdiag")(net, torch.randn(1, 3, 2, 2), torch.zeros(1, dtype=torch.long))
