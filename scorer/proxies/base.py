"""A registered proxy ready to call, and the shared chores around a proxy's maths.

A proxy is a function `(net, inputs, targets) -> float`, higher = predicted
better. Each lives in its own module, pure maths; its metadata is declared once
in scorer/proxies/registry.py. Proxies that start from the same forward pass get
it through `probe.probe_for` and name what that forward must record in `records`
(see probe.py).
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from typing import Callable, Iterator

import torch
from torch import nn
from torch.nn import functional as F

from .registry import ProxyInfo

ProxyFn = Callable[[nn.Module, torch.Tensor, torch.Tensor], float]


@dataclass(frozen=True)
class Proxy(ProxyInfo):
    """A proxy's metadata (ProxyInfo) together with its maths: what `get_proxy` returns."""

    fn: ProxyFn = field(kw_only=True, repr=False, compare=False)

    @classmethod
    def of(cls, info: ProxyInfo, fn: ProxyFn) -> "Proxy":
        return cls(**{f.name: getattr(info, f.name) for f in fields(ProxyInfo)}, fn=fn)

    def __call__(self, net: nn.Module, inputs: torch.Tensor, targets: torch.Tensor) -> float:
        return float(self.fn(net, inputs, targets))


def _per_sample_norm(bn: nn.modules.batchnorm._BatchNorm, x: torch.Tensor) -> torch.Tensor:
    return F.instance_norm(x, weight=bn.weight, bias=bn.bias, eps=bn.eps)


@contextmanager
def per_sample_batchnorm(net: nn.Module) -> Iterator[nn.Module]:
    """Make every BatchNorm normalise each sample with its own statistics.

    Train-mode BatchNorm on a batch of one sample is instance normalisation
    with the BN's affine parameters, so under this context a batch of n
    samples behaves exactly like n separate batch-size-1 passes.
    """
    patched = [m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for bn in patched:
        bn.forward = _per_sample_norm.__get__(bn)  # type: ignore[method-assign]
    try:
        yield net
    finally:
        for bn in patched:
            del bn.forward  # falls back to the class's forward


def trainable_parameters(net: nn.Module) -> list[nn.Parameter]:
    return [p for p in net.parameters() if p.requires_grad]


def prunable_layers(net: nn.Module) -> list[nn.Conv2d | nn.Linear]:
    """Conv and linear layers: what the pruning-based proxies (snip, synflow, ...) score."""
    return [m for m in net.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
