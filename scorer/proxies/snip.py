"""snip: connection sensitivity, sum over conv/linear weights of |w * dL/dw|.

Lee et al. take the gradient of the loss with respect to a multiplicative
mask of ones on each weight; that gradient is exactly w * dL/dw, so we take
the weight gradient directly (zero-cost-nas `snip`: train mode, ordinary
BatchNorm, mean cross-entropy of the batch).
"""
from __future__ import annotations

import torch
from torch import nn

from .base import proxy
from .grad_norm import weight_gradients

PAPER = "Lee et al., SNIP: Single-shot Network Pruning based on Connection Sensitivity, ICLR 2019"


@proxy("snip", description="sum of |w * dL/dw| over conv/linear weights (SNIP saliency)", paper=PAPER,
       shares_forward=True)
def snip(net: nn.Module, inputs: torch.Tensor, targets: torch.Tensor) -> float:
    pairs = weight_gradients(net, inputs, targets)
    return float(sum(((w.detach().double() * g.double()).abs().sum() for w, g in pairs), 0.0))
