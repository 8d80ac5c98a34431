"""grad_norm: the summed L2 norms of the loss gradient of every conv/linear weight.

As in zero-cost-nas (`foresight/pruners/measures/grad_norm.py`): one forward of
the batch in train mode (ordinary BatchNorm), mean cross-entropy, backward,
score = sum over Conv2d/Linear layers of ||dL/dW||_2. Gradients are taken with
`torch.autograd.grad`, so the caller's `.grad` fields are left alone. Inside
`probe.sharing` the forward and backward are shared with snip, jacov, naswot, ...
"""
from __future__ import annotations

import torch
from torch import nn

from .probe import probe_for


def weight_gradients(net: nn.Module, inputs: torch.Tensor, targets: torch.Tensor):
    """(weight, dL/dweight) for every prunable layer; an unreached weight gets a zero gradient."""
    return probe_for(net, inputs, targets).weight_gradients


def grad_norm(net: nn.Module, inputs: torch.Tensor, targets: torch.Tensor) -> float:
    return float(sum((g.detach().double().norm() for _, g in weight_gradients(net, inputs, targets)), 0.0))
