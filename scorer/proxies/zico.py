"""ZiCo: per-layer gradient signal-to-noise, summed in log space.

Li et al., ZiCo: Zero-shot NAS via Inverse Coefficient of Variation on
Gradients, ICLR 2023. The probe batch is split into `splits` mini-batches (2,
as in the authors' code); for every conv/linear weight the gradient's mean
absolute value and standard deviation are taken across those mini-batches,
and score = sum over layers of log(sum over weights of mean|g| / std(g)),
counting only weights whose std is non-zero. It belongs to the same
gradient-kernel family as KNAS: both reward gradients that agree across samples.
"""
from __future__ import annotations

import torch
from torch import nn

from .grad_norm import weight_gradients


def zico_score(per_batch: list[list[torch.Tensor]]) -> float:
    """per_batch[b][layer] = that layer's weight gradient on mini-batch b."""
    score = 0.0
    for layer in zip(*per_batch):
        g = torch.stack([t.detach().double().flatten() for t in layer])  # batches x weights
        std = g.std(dim=0, unbiased=False)
        keep = std > 0
        total = (g.abs().mean(dim=0)[keep] / std[keep]).sum()
        if total > 0:
            score += float(torch.log(total))
    return score


def zico(net: nn.Module, inputs: torch.Tensor, targets: torch.Tensor, splits: int = 2) -> float:
    if len(inputs) < splits:
        raise ValueError(f"zico needs at least {splits} samples")
    per_batch = [
        [g for _, g in weight_gradients(net, x, y)]
        for x, y in zip(inputs.chunk(splits), targets.chunk(splits))
    ]
    return zico_score(per_batch)
