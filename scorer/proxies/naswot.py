"""naswot: log-determinant of the kernel of ReLU activation codes.

Mellor et al. 2021 (second version, as in NASLib / zero-cost-nas `nwot`): for
each sample the binary code c = (input > 0) of every ReLU; the kernel
K = sum over ReLUs of C C^T + (1 - C)(1 - C)^T counts, for each pair of
samples, the units on which their codes agree. score = log|det K|
(-inf when K is singular, e.g. a network whose output ignores its input).
The kernel is gathered during the train-mode forward that `probe` shares.
"""
from __future__ import annotations

import torch
from torch import nn

from .probe import probe_for


def activation_kernel(net: nn.Module, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """The n x n agreement kernel K (float64) of one train-mode forward of `inputs`."""
    return probe_for(net, inputs, targets).relu_kernel()


def naswot(net: nn.Module, inputs: torch.Tensor, targets: torch.Tensor) -> float:
    return float(torch.linalg.slogdet(activation_kernel(net, inputs, targets)).logabsdet)
