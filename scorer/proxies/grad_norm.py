"""grad_norm: the summed L2 norms of the loss gradient of every conv/linear weight.

As in zero-cost-nas (`foresight/pruners/measures/grad_norm.py`): one forward of
the batch in train mode (ordinary BatchNorm), mean cross-entropy, backward,
score = sum over Conv2d/Linear layers of ||dL/dW||_2. Gradients are taken with
`torch.autograd.grad`, so the caller's `.grad` fields are left alone.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from .base import prunable_layers, proxy

PAPER = "Abdelfattah et al., Zero-Cost Proxies for Lightweight NAS, ICLR 2021"


def weight_gradients(net: nn.Module, inputs: torch.Tensor, targets: torch.Tensor):
    """(weight, dL/dweight) for every prunable layer; an unreached weight gets a zero gradient."""
    net.train()
    weights = [m.weight for m in prunable_layers(net) if m.weight.requires_grad]
    if not weights:
        return []
    loss = F.cross_entropy(net(inputs), targets, reduction="mean")
    grads = torch.autograd.grad(loss, weights, allow_unused=True)
    return [(w, torch.zeros_like(w) if g is None else g) for w, g in zip(weights, grads)]


@proxy("grad_norm", "grad-norm", description="sum of the L2 norms of conv/linear weight gradients", paper=PAPER)
def grad_norm(net: nn.Module, inputs: torch.Tensor, targets: torch.Tensor) -> float:
    return float(sum((g.detach().double().norm() for _, g in weight_gradients(net, inputs, targets)), 0.0))
