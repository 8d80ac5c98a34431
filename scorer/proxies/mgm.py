"""KNAS's gradient kernel: the mean of the Gram matrix of per-sample gradients.

score = (1/n^2) sum_ij <g_i, g_j>, g_i the gradient of sample i's loss over
all parameters with that sample alone in train-mode BatchNorm. The Gram mean
equals ||(1/n) sum_i g_i||^2, and with per-sample BatchNorm the samples do
not interact, so one batched forward+backward of the mean loss gives it
exactly, without materialising any per-sample gradient.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.func import functional_call, grad, vmap
from torch.nn import functional as F

from .base import per_sample_batchnorm, trainable_parameters


def _squared_norm(tensors) -> torch.Tensor:
    return sum((t.double() ** 2).sum() for t in tensors if t is not None)


def mean_gradient(net: nn.Module, inputs: torch.Tensor, targets: torch.Tensor) -> list[torch.Tensor | None]:
    """(1/n) sum_i g_i, each g_i taken as if sample i were alone in the batch."""
    net.train()
    params = trainable_parameters(net)
    with per_sample_batchnorm(net):
        loss = F.cross_entropy(net(inputs), targets, reduction="mean")
    return list(torch.autograd.grad(loss, params, allow_unused=True))


def per_sample_squared_norms(
    net: nn.Module, inputs: torch.Tensor, targets: torch.Tensor, chunk: int = 16
) -> torch.Tensor:
    """||g_i||^2 for every sample, vectorised with torch.func in chunks to bound memory."""
    net.train()
    params = {k: p.detach() for k, p in net.named_parameters() if p.requires_grad}
    buffers = {k: b for k, b in net.named_buffers()}

    def loss_one(p, x, y):
        logits = functional_call(net, (p, buffers), (x.unsqueeze(0),))
        return F.cross_entropy(logits, y.unsqueeze(0))

    per_sample_grad = vmap(grad(loss_one), in_dims=(None, 0, 0))
    norms = []
    with per_sample_batchnorm(net):
        for start in range(0, len(inputs), chunk):
            g = per_sample_grad(params, inputs[start : start + chunk], targets[start : start + chunk])
            norms.append(sum((t.double() ** 2).flatten(1).sum(1) for t in g.values()))
    return torch.cat(norms)


def mgm(net: nn.Module, inputs: torch.Tensor, targets: torch.Tensor) -> float:
    return float(_squared_norm(mean_gradient(net, inputs, targets)))


def mgm_offdiag(net: nn.Module, inputs: torch.Tensor, targets: torch.Tensor) -> float:
    n = len(inputs)
    if n < 2:
        raise ValueError("mgm-offdiag needs at least 2 samples")
    total = _squared_norm(mean_gradient(net, inputs, targets)) * n * n  # sum over all i, j
    diagonal = per_sample_squared_norms(net, inputs, targets).sum()
    return float((total - diagonal) / (n * (n - 1)))
