"""Shared probe passes (scorer/proxies/probe.py) change no score, only the work done.

Each proxy scored together with all the others in one `score_parts` call (one net, one
shared forward) must equal the same proxy scored alone; naswot's one-matmul kernel must
equal the published two-matmul definition.
"""
from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from scorer.proxies import get_proxy, list_proxies
from scorer.proxies.probe import RELU_KERNEL, Probe, probe_for, sharing
from scorer.scoring import score_parts
from scorer.spaces import get_space

PER_NET = [p for p in list_proxies() if not get_proxy(p).components]
CASES = [
    ("nats-tss", "|nor_conv_3x3~0|+|nor_conv_1x1~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|none~2|", (3, 16, 16)),
    ("nats-tss", "|avg_pool_3x3~0|+|nor_conv_3x3~0|skip_connect~1|+|nor_conv_1x1~0|none~1|nor_conv_3x3~2|", (3, 16, 16)),
    ("nats-sss", "16:8:24:16:8", (3, 32, 32)),
]


def batch(shape, n: int = 8, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, *shape, generator=g), torch.randint(0, 10, (n,), generator=g)


@pytest.mark.parametrize("space,arch,shape", CASES)
def test_shared_scores_equal_scores_alone(space, arch, shape):
    inputs, targets = batch(shape)
    together = score_parts(space, arch, PER_NET, inputs, targets, seed=5, num_classes=10)
    assert set(together.scores) == set(PER_NET) == set(together.part_seconds)
    for name in PER_NET:
        alone = score_parts(space, arch, [name], inputs, targets, seed=5, num_classes=10)
        assert together.scores[name] == pytest.approx(alone.scores[name], rel=1e-6, abs=1e-9), name


def _naswot_reference(net: nn.Module, inputs: torch.Tensor) -> float:
    """zero-cost-nas `nwot`: per ReLU, K += C C^T + (1 - C)(1 - C)^T in float64, no sharing.

    Like the reference, a module counts as a ReLU when its type name says so (ReLUConvBN too).
    """
    n = len(inputs)
    kernel = torch.zeros((n, n), dtype=torch.float64)

    def hook(module, args, output):
        c = (args[0].detach().reshape(n, -1) > 0).double()
        kernel.add_(c @ c.T).add_((1 - c) @ (1 - c).T)

    handles = [m.register_forward_hook(hook) for m in net.modules() if "ReLU" in type(m).__name__]
    net.train()
    with torch.no_grad():
        net(inputs)
    for h in handles:
        h.remove()
    return float(torch.linalg.slogdet(kernel).logabsdet)


@pytest.mark.parametrize("space,arch,shape", CASES)
def test_naswot_kernel_matches_the_two_matmul_definition(space, arch, shape):
    torch.manual_seed(0)
    net = get_space(space).build(arch, num_classes=10, in_shape=shape)
    inputs, targets = batch(shape)
    expected = _naswot_reference(copy.deepcopy(net), inputs)
    assert get_proxy("naswot")(net, inputs, targets) == pytest.approx(expected, rel=1e-12)


def test_one_forward_serves_every_proxy_in_a_sharing_block():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Flatten(), nn.Linear(12, 16), nn.ReLU(), nn.Linear(16, 3))
    x, y = torch.randn(6, 3, 2, 2), torch.randint(0, 3, (6,))
    calls = []
    net.register_forward_hook(lambda *args: calls.append(1))
    with sharing(net, x, y, records=[RELU_KERNEL]) as probe:
        for name in ("grad_norm", "snip", "jacov", "naswot"):
            get_proxy(name)(net, x, y)
        assert probe_for(net, x, y) is probe
        assert probe_for(copy.deepcopy(net), x, y) is not probe  # other objects get a private probe
    assert len(calls) == 1
    for name in ("grad_norm", "snip", "jacov", "naswot"):  # outside: a forward each
        get_proxy(name)(net, x, y)
    assert len(calls) == 5


def test_a_missing_record_reruns_the_forward_rather_than_failing():
    net = nn.Sequential(nn.Flatten(), nn.Linear(12, 16), nn.ReLU(), nn.Linear(16, 3))
    x, y = torch.randn(6, 3, 2, 2), torch.randint(0, 3, (6,))
    probe = Probe(net, x, y)
    first = probe.weight_gradients
    assert probe.forward().relu_kernel is None
    assert probe.forward(RELU_KERNEL).relu_kernel is not None
    again = probe.weight_gradients  # recomputed from the new graph, same values
    assert all(torch.equal(a[1], b[1]) for a, b in zip(first, again))


def test_unknown_record_is_refused():
    with pytest.raises(ValueError, match="unknown forward records"):
        Probe(nn.Linear(2, 2), torch.zeros(1, 2), torch.zeros(1, dtype=torch.long), records=["codes"])
