"""flops: multiply-accumulates of one forward pass of a single sample.

Counted with forward hooks on conv and linear layers (biases, BatchNorm,
pooling and activations are not counted): a Conv2d costs
out_elements * in_channels / groups * kh * kw, a Linear out_elements * in_features.
"""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .base import prunable_layers


def _macs(module: nn.Conv2d | nn.Linear, output: torch.Tensor) -> int:
    if isinstance(module, nn.Conv2d):
        kh, kw = module.kernel_size
        return output.numel() * (module.in_channels // module.groups) * kh * kw
    return output.numel() * module.in_features  # nn.Linear


def count_macs(net: nn.Module, sample: torch.Tensor) -> int:
    """MACs of `net(sample)`, `sample` a batch of one; the net's train/eval flags are restored."""
    total = 0

    def count(module: nn.Conv2d | nn.Linear, args: tuple[Any, ...], output: torch.Tensor) -> None:
        nonlocal total
        total += _macs(module, output)

    modes = {m: m.training for m in net.modules()}
    handles = [m.register_forward_hook(count) for m in prunable_layers(net)]
    try:
        net.eval()  # batch of one: eval-mode BatchNorm works for any layer shape
        with torch.no_grad():
            net(sample)
    finally:
        for handle in handles:
            handle.remove()
        for module, training in modes.items():
            module.training = training
    return total


def flops(net: nn.Module, inputs: torch.Tensor, targets: torch.Tensor) -> float:
    return float(count_macs(net, inputs[:1]))
