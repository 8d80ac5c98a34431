"""AZ-NAS's expressivity, progressivity and trainability against hand computations."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from scorer.proxies import get_proxy
from scorer.proxies.az import jacobian_norm_score, spectral_entropy
from scorer.spaces import get_space


class Chain(nn.Module):
    """A toy network that lists its blocks, as MacroNet does."""

    def __init__(self, *blocks: nn.Module) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(blocks)

    def feature_blocks(self):
        return list(self.blocks)

    def forward(self, x):
        for block in self.blocks:
            x = block(x)
        return x.mean((2, 3))


def scaled_identity(channels: int, scale: float) -> nn.Conv2d:
    conv = nn.Conv2d(channels, channels, 1, bias=False)
    with torch.no_grad():
        conv.weight.copy_(scale * torch.eye(channels)[:, :, None, None])
    return conv


def test_spectral_entropy_matches_numpy():
    torch.manual_seed(0)
    feature = torch.randn(4, 5, 3, 3) * torch.tensor([3.0, 1.0, 0.5, 0.1, 2.0])[None, :, None, None]
    rows = feature.permute(0, 2, 3, 1).reshape(-1, 5).double().numpy()
    eig = np.linalg.eigvalsh(np.cov(rows, rowvar=False, bias=True))
    p = eig / eig.sum()
    assert spectral_entropy(feature) == pytest.approx(float(-(p * np.log(p)).sum()), rel=1e-5)


def test_spectral_entropy_bounds():
    torch.manual_seed(0)
    assert spectral_entropy(torch.randn(64, 8, 8, 8)) == pytest.approx(math.log(8), rel=1e-2)  # isotropic
    collapsed = torch.randn(64, 1, 8, 8).repeat(1, 8, 1, 1)  # every channel the same: one direction
    assert spectral_entropy(collapsed) == pytest.approx(0.0, abs=1e-5)
    assert spectral_entropy(torch.ones(4, 8, 2, 2)) == 0.0  # constant features


def test_expressivity_and_progressivity_sum_and_min_of_block_entropies():
    torch.manual_seed(0)
    net = Chain(nn.Conv2d(3, 6, 3, padding=1), nn.Conv2d(6, 6, 1), nn.Conv2d(6, 6, 3, padding=1))
    x = torch.randn(8, 3, 6, 6)
    features, h = [], x
    for block in net.blocks:
        h = block(h)
        features.append(spectral_entropy(h))
    assert get_proxy("expressivity")(net, x, None) == pytest.approx(sum(features), rel=1e-6)
    steps = [b - a for a, b in zip(features, features[1:])]
    assert get_proxy("progressivity")(net, x, None) == pytest.approx(min(steps), rel=1e-6, abs=1e-9)


@pytest.mark.parametrize("scale", [0.25, 0.9, 3.0])
def test_trainability_reads_the_jacobian_norm(scale):
    """A block y = s x has Jacobian norm s: the score is -s - 1/s + 2 (0 at s = 1).

    The estimate (top singular value of a sampled cross-covariance) runs a few % high
    with 8 channels and 16k pixel rows, as in the authors' definition.
    """
    torch.manual_seed(0)
    net = Chain(nn.Conv2d(3, 8, 3, padding=1), scaled_identity(8, scale))
    x = torch.randn(64, 3, 16, 16)
    expected = -scale - 1 / scale + 2
    assert get_proxy("trainability")(net, x, None) == pytest.approx(expected, rel=0.1, abs=0.02)


def test_trainability_of_an_identity_block_is_minus_infinity():
    net = Chain(nn.Conv2d(3, 8, 3, padding=1), nn.Identity())
    assert get_proxy("trainability")(net, torch.randn(4, 3, 4, 4), None) == -math.inf


def test_strided_block_is_folded_into_channels():
    """pixel_unshuffle lines an input pixel block up with its output pixel: s = 1 for an averaging-free subsample."""
    torch.manual_seed(0)
    v = torch.randn(8, 4, 2, 2)
    g = torch.zeros(8, 4, 4, 4)
    g[:, :, ::2, ::2] = v  # stride-2 subsampling pulls v back onto the top-left pixel of each 2x2 block
    assert jacobian_norm_score(g, v) == pytest.approx(0.0, abs=0.3)


def test_trainability_is_deterministic_and_ignores_the_global_rng():
    net = get_space("nats-tss").build(get_space("nats-tss").sample(1, 3)[0], num_classes=10, in_shape=(3, 16, 16))
    x = torch.randn(4, 3, 16, 16)
    first = get_proxy("trainability")(net, x, None)
    torch.manual_seed(99)
    assert get_proxy("trainability")(net, x, None) == first


def test_needs_a_network_that_lists_its_blocks():
    with pytest.raises(ValueError, match="feature_blocks"):
        get_proxy("expressivity")(nn.Sequential(nn.Conv2d(3, 3, 1)), torch.randn(2, 3, 4, 4), None)
