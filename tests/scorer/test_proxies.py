"""Every registered proxy's contract, and each baseline proxy against a hand computation."""
from __future__ import annotations

import copy
import math

import numpy as np
import pytest
import torch
from torch import nn
from torch.nn import functional as F

from scorer.proxies import get_proxy, list_proxies
from scorer.registry import UnknownNameError
from scorer.spaces import get_space

TSS_ARCH = "|nor_conv_3x3~0|+|nor_conv_1x1~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|none~2|"
SSS_ARCH = "16:8:24:16:8"
ALL_NONE = "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|"
ALL_CONV = "|nor_conv_3x3~0|+|nor_conv_3x3~0|nor_conv_3x3~1|+|nor_conv_3x3~0|nor_conv_3x3~1|nor_conv_3x3~2|"
SHAPE, BATCH, CLASSES = (3, 32, 32), 8, 10
TSS_SHAPE = (3, 16, 16)  # the 17-cell tss skeleton at 16x16 keeps the suite fast


def build(space: str, arch: str, shape=SHAPE, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return get_space(space).build(arch, num_classes=CLASSES, in_shape=shape)


def batch(n: int = BATCH, shape=SHAPE, classes: int = CLASSES, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, *shape, generator=g), torch.randint(0, classes, (n,), generator=g)


def score(name: str, net: nn.Module, inputs, targets) -> float:
    return get_proxy(name)(net, inputs, targets)


# Proxies computed on one net; rank aggregates (e.g. ensemble) are tested in test_ensemble.py.
PER_NET_PROXIES = [name for name in list_proxies() if not get_proxy(name).components]
NETS = {"nats-tss": (TSS_ARCH, TSS_SHAPE), "nats-sss": (SSS_ARCH, SHAPE)}


# --- the contract every registered proxy follows -------------------------------------------


@pytest.mark.parametrize("space", sorted(NETS))
@pytest.mark.parametrize("name", PER_NET_PROXIES)
def test_finite_float_and_deterministic(name, space):
    arch, shape = NETS[space]
    net = build(space, arch, shape)
    inputs, targets = batch(shape=shape)
    first = score(name, copy.deepcopy(net), inputs, targets)
    torch.manual_seed(12345)  # a proxy must not depend on the global RNG
    torch.randn(7)
    second = score(name, copy.deepcopy(net), inputs, targets)
    assert isinstance(first, float) and math.isfinite(first)
    assert second == pytest.approx(first, rel=1e-9, abs=0.0)


@pytest.mark.parametrize("space", sorted(NETS))
@pytest.mark.parametrize("name", PER_NET_PROXIES)
def test_leaves_net_usable(name, space):
    arch, shape = NETS[space]
    net = build(space, arch, shape)
    inputs, targets = batch(shape=shape)
    inputs_before = inputs.clone()
    params_before = {k: p.detach().clone() for k, p in net.named_parameters()}
    score(name, net, inputs, targets)
    for module in net.modules():
        assert not module._forward_hooks, f"{name} left a forward hook on {type(module).__name__}"
        assert not module._forward_pre_hooks
        assert not module._backward_hooks
        assert "forward" not in vars(module), f"{name} left {type(module).__name__}.forward patched"
    for k, p in net.named_parameters():
        assert p.dtype == torch.float32 and torch.equal(p.detach(), params_before[k]), k
    assert torch.equal(inputs, inputs_before)
    net.eval()
    assert net(inputs).shape == (BATCH, CLASSES)


def test_unknown_proxy_lists_the_names():
    with pytest.raises(UnknownNameError) as info:
        get_proxy("no-such-proxy")
    for name in PER_NET_PROXIES:
        assert name in str(info.value)


def test_baselines_are_registered():
    assert {"grad_norm", "snip", "synflow", "naswot", "params", "flops"} <= set(list_proxies())
    assert not get_proxy("synflow").needs_labels and not get_proxy("naswot").needs_labels
    assert get_proxy("snip").needs_labels and get_proxy("grad_norm").needs_labels


# --- params and flops ----------------------------------------------------------------------


def test_params_hand_count():
    net = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3), nn.Linear(3, 2, bias=False))
    x, y = torch.randn(2, 4), torch.zeros(2, dtype=torch.long)
    assert score("params", net, x, y) == (4 * 3 + 3) + (3 + 3) + 3 * 2
    net[2].weight.requires_grad_(False)  # frozen parameters are not counted
    assert score("params", net, x, y) == 21.0


def test_params_orders_none_below_conv():
    x, y = batch(2, TSS_SHAPE)
    assert score("params", build("nats-tss", ALL_NONE, TSS_SHAPE), x, y) < score(
        "params", build("nats-tss", ALL_CONV, TSS_SHAPE), x, y
    )


def test_flops_hand_count():
    net = nn.Sequential(
        nn.Conv2d(3, 4, 3, padding=1),  # out 4x8x8, each 3*3*3 MACs
        nn.BatchNorm2d(4),
        nn.ReLU(),
        nn.Conv2d(4, 6, 3, stride=2, padding=1, groups=2),  # out 6x4x4, each (4/2)*3*3 MACs
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(6, 5),
    )
    net.train()
    net[1].eval()
    x, y = torch.randn(5, 3, 8, 8), torch.zeros(5, dtype=torch.long)
    expected = 4 * 8 * 8 * 27 + 6 * 4 * 4 * 18 + 6 * 5
    assert score("flops", net, x, y) == expected
    assert [m.training for m in net] == [True, False, True, True, True, True, True]  # flags restored


# --- grad_norm and snip against manual backpropagation ---------------------------------------


def test_grad_norm_and_snip_hand_backprop():
    torch.manual_seed(3)
    net = nn.Sequential(nn.Linear(4, 5), nn.ReLU(), nn.Linear(5, 3)).double()
    x = torch.randn(6, 4, dtype=torch.float64)
    y = torch.tensor([0, 1, 2, 2, 1, 0])
    with torch.no_grad():
        w1, b1, w2, b2 = net[0].weight, net[0].bias, net[2].weight, net[2].bias
        z = x @ w1.T + b1
        h = z.clamp(min=0)
        logits = h @ w2.T + b2
        d_logits = (F.softmax(logits, dim=1) - F.one_hot(y, 3).double()) / len(x)  # mean cross-entropy
        g2 = d_logits.T @ h
        g1 = ((d_logits @ w2) * (z > 0)).T @ x
        expected_norm = g1.norm() + g2.norm()
        expected_snip = (w1 * g1).abs().sum() + (w2 * g2).abs().sum()
    assert score("grad_norm", net, x, y) == pytest.approx(float(expected_norm), rel=1e-10)
    assert score("snip", net, x, y) == pytest.approx(float(expected_snip), rel=1e-10)
    assert all(p.grad is None for p in net.parameters())  # gradients taken without touching .grad


# --- synflow -------------------------------------------------------------------------------


def test_synflow_closed_form_on_linear_chain():
    # For a bias-free chain of L linear layers on an all-ones input, every layer carries the
    # whole synaptic flow R = 1^T |W_L| ... |W_1| 1 (Tanaka et al.'s conservation law): score = L * R.
    torch.manual_seed(4)
    net = nn.Sequential(
        nn.Linear(4, 5, bias=False),
        nn.BatchNorm1d(5),  # must act as identity (it would also fail on a batch of one in train mode)
        nn.ReLU(),
        nn.Linear(5, 3, bias=False),
        nn.Linear(3, 2, bias=False),
    )
    with torch.no_grad():
        net[1].weight.fill_(-7.0)
        net[1].bias.fill_(3.0)
    weights = [net[0].weight, net[3].weight, net[4].weight]
    assert any((w < 0).any() for w in weights)
    before = [w.detach().clone() for w in weights]
    with torch.no_grad():
        flow = torch.ones(1, 4, dtype=torch.float64)
        for w in weights:
            flow = flow @ w.double().abs().T
        expected = 3 * float(flow.sum())
    x, y = torch.randn(6, 4), torch.zeros(6, dtype=torch.long)
    assert score("synflow", net, x, y) == pytest.approx(expected, rel=1e-12)
    assert all(torch.equal(w, b) for w, b in zip(weights, before))  # the caller's signs survive
    assert net[0].weight.dtype == torch.float32


def test_synflow_orders_none_below_conv():
    x, y = batch(2, TSS_SHAPE)
    none = score("synflow", build("nats-tss", ALL_NONE, TSS_SHAPE), x, y)
    conv = score("synflow", build("nats-tss", ALL_CONV, TSS_SHAPE), x, y)
    assert none < conv and conv > 0


# --- naswot --------------------------------------------------------------------------------


def naswot_net() -> nn.Module:
    torch.manual_seed(5)
    return nn.Sequential(
        nn.Conv2d(2, 3, 3),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(3 * 3 * 3, 6),
        nn.ReLU(),
        nn.Linear(6, 2),
    ).double()


def test_naswot_matches_numpy_kernel():
    net = naswot_net()
    x = torch.randn(5, 2, 5, 5, dtype=torch.float64)
    relu_inputs = []
    with torch.no_grad():
        h = x
        for layer in net:
            if isinstance(layer, nn.ReLU):
                relu_inputs.append(h.reshape(len(x), -1).numpy().copy())
            h = layer(h)
    kernel = np.zeros((5, 5))
    for a in relu_inputs:
        codes = (a > 0).astype(np.float64)
        kernel += codes @ codes.T + (1 - codes) @ (1 - codes).T
    sign, expected = np.linalg.slogdet(kernel)
    assert sign > 0 and np.isfinite(expected)
    assert score("naswot", net, x, torch.zeros(5, dtype=torch.long)) == pytest.approx(expected, rel=1e-12)


def test_naswot_identical_samples_are_singular():
    net = naswot_net()
    x = torch.randn(1, 2, 5, 5, dtype=torch.float64).repeat(3, 1, 1, 1)
    assert score("naswot", net, x, torch.zeros(3, dtype=torch.long)) == -math.inf


class Broken(nn.Module):
    def forward(self, x):
        raise RuntimeError("boom")


@pytest.mark.parametrize("name", ["naswot", "flops"])
def test_hooks_removed_on_error(name):
    net = nn.Sequential(nn.Conv2d(2, 3, 3), nn.ReLU(), nn.Flatten(), nn.Linear(27, 2), Broken())
    with pytest.raises(RuntimeError, match="boom"):
        score(name, net, torch.randn(2, 2, 5, 5), torch.zeros(2, dtype=torch.long))
    assert all(not m._forward_hooks for m in net.modules())
