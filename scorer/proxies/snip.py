"""snip: connection sensitivity, sum over conv/linear weights of |w * dL/dw|.

Lee et al. take the gradient of the loss with respect to a multiplicative
mask of ones on each weight; that gradient is exactly w * dL/dw, so we take
the weight gradient directly (zero-cost-nas `snip`: train mode, ordinary
BatchNorm, mean cross-entropy of the batch).
"""
from __future__ import annotations

import torch
from torch import nn

from .grad_norm import weight_gradients


def snip(net: nn.Module, inputs: torch.Tensor, targets: torch.Tensor) -> float:
    pairs = weight_gradients(net, inputs, targets)
    return float(sum(((w.detach().double() * g.double()).abs().sum() for w, g in pairs), 0.0))
