"""Slow, obviously-correct references the fast proxies are checked against."""
from __future__ import annotations

import torch
from torch.nn import functional as F


def per_sample_gradients(net, inputs, targets) -> torch.Tensor:
    """n x P matrix: each row the flattened gradient of one sample's loss, sample alone in train mode."""
    net.train()
    params = [p for p in net.parameters() if p.requires_grad]
    rows = []
    for x, y in zip(inputs, targets):
        loss = F.cross_entropy(net(x.unsqueeze(0)), y.unsqueeze(0))
        grads = torch.autograd.grad(loss, params, allow_unused=True)
        rows.append(torch.cat([(g if g is not None else torch.zeros_like(p)).flatten() for g, p in zip(grads, params)]))
    return torch.stack(rows).double()


def gram_mean_loop(net, inputs, targets) -> float:
    g = per_sample_gradients(net, inputs, targets)
    return float((g @ g.T).mean())


def gram_offdiag_loop(net, inputs, targets) -> float:
    g = per_sample_gradients(net, inputs, targets)
    gram = g @ g.T
    n = len(g)
    return float((gram.sum() - gram.diagonal().sum()) / (n * (n - 1)))
