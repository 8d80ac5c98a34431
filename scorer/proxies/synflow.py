"""synflow: synaptic flow of the network with absolute weights and no BatchNorm.

Tanaka et al. 2020, as zero-cost-nas computes it for NAS (`synflow`, bn=False):
on a float64 copy of the net whose parameters are all replaced by their
absolute values and whose BatchNorm layers are identities, R = sum(f(1)) for a
single all-ones input; score = sum over conv/linear weights of |w * dR/dw|.
The caller's net is never touched.
"""
from __future__ import annotations

import copy
from contextlib import contextmanager
from typing import Iterator

import torch
from torch import nn

from .base import prunable_layers


def _identity(input: torch.Tensor) -> torch.Tensor:  # named as in Module.forward, which it replaces
    return input


@contextmanager
def batchnorm_off(net: nn.Module) -> Iterator[nn.Module]:
    """Make every BatchNorm layer an identity for the duration of the block."""
    patched = [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for bn in patched:
        bn.forward = _identity  # type: ignore[method-assign]
    try:
        yield net
    finally:
        for bn in patched:
            del bn.forward  # falls back to the class's forward


def synflow(net: nn.Module, inputs: torch.Tensor, targets: torch.Tensor) -> float:
    net = copy.deepcopy(net).double().eval()  # eval: no BN left, and no dropout randomness
    with torch.no_grad():
        for p in net.parameters():
            p.abs_()
    weights = [m.weight for m in prunable_layers(net) if m.weight.requires_grad]
    if not weights:
        return 0.0
    ones = torch.ones((1, *inputs.shape[1:]), dtype=torch.float64, device=inputs.device)
    with batchnorm_off(net):
        flow = net(ones).sum()
    grads = torch.autograd.grad(flow, weights, allow_unused=True)
    return float(sum(((w.detach() * g).abs().sum() for w, g in zip(weights, grads) if g is not None), 0.0))
