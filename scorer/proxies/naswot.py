"""naswot: log-determinant of the kernel of ReLU activation codes.

Mellor et al. 2021 (second version, as in NASLib / zero-cost-nas `nwot`): for
each sample the binary code c = (input > 0) of every ReLU; the kernel
K = sum over ReLUs of C C^T + (1 - C)(1 - C)^T counts, for each pair of
samples, the units on which their codes agree. score = log|det K|
(-inf when K is singular, e.g. a network whose output ignores its input).
"""
from __future__ import annotations

import torch
from torch import nn

from .base import proxy

PAPER = "Mellor et al., Neural Architecture Search without Training, ICML 2021"


def _is_relu(module: nn.Module) -> bool:
    return "ReLU" in type(module).__name__  # nn.ReLU and its kin, as the reference matches them


def activation_kernel(net: nn.Module, inputs: torch.Tensor) -> torch.Tensor:
    """The n x n agreement kernel K (float64) of one train-mode forward of `inputs`."""
    n = len(inputs)
    kernel = torch.zeros((n, n), dtype=torch.float64, device=inputs.device)

    def record(module: nn.Module, args, output) -> None:
        codes = (args[0].detach().reshape(n, -1) > 0).double()
        kernel.add_(codes @ codes.T).add_((1 - codes) @ (1 - codes).T)

    relus = [m for m in net.modules() if _is_relu(m)]
    if not relus:
        raise ValueError("naswot needs a network with ReLU modules")
    handles = [m.register_forward_hook(record) for m in relus]
    try:
        net.train()
        with torch.no_grad():
            net(inputs)
    finally:
        for handle in handles:
            handle.remove()
    return kernel


@proxy("naswot", "nwot", description="log|det| of the kernel of ReLU activation codes (NASWOT)",
       needs_labels=False, paper=PAPER)
def naswot(net: nn.Module, inputs: torch.Tensor, targets: torch.Tensor) -> float:
    return float(torch.linalg.slogdet(activation_kernel(net, inputs)).logabsdet)
