"""params: the number of trainable parameters, the field's simplest baseline."""
from __future__ import annotations

import torch
from torch import nn

from .base import trainable_parameters


def params(net: nn.Module, inputs: torch.Tensor, targets: torch.Tensor) -> float:
    return float(sum(p.numel() for p in trainable_parameters(net)))
