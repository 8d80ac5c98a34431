"""jacov: how uncorrelated the input-Jacobians of different samples are.

Mellor et al., Neural Architecture Search without Training (arXiv v1, 2020),
as implemented in zero-cost-nas (`jacob_cov`): J_i = d(sum of outputs)/dx_i,
C = corrcoef of the flattened J_i, score = -sum_k [log(λ_k + 1e-5) + 1/(λ_k + 1e-5)]
over C's eigenvalues λ_k. Higher = samples are told apart = better.
"""
from __future__ import annotations

import torch
from torch import nn

from .probe import probe_for

K = 1e-5


def jacobian_score(jacobians: torch.Tensor) -> float:
    """Score of an n x d matrix of per-sample input Jacobians."""
    corr = torch.corrcoef(jacobians.double())
    corr = torch.nan_to_num(corr, nan=0.0)  # a constant Jacobian row has no defined correlation
    eigenvalues = torch.linalg.eigvalsh((corr + corr.T) / 2)
    return float(-(torch.log(eigenvalues + K) + 1.0 / (eigenvalues + K)).sum())


def jacov(net: nn.Module, inputs: torch.Tensor, targets: torch.Tensor) -> float:
    grad = probe_for(net, inputs, targets).input_gradient  # train mode, as the reference
    return jacobian_score(grad.reshape(len(inputs), -1))
