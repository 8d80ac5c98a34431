"""One candidate's probe passes, run once and shared by every proxy that needs them.

grad_norm, snip, jacov, naswot and the AZ-NAS trio all start from the same
train-mode forward of the probe batch, and grad_norm and snip from the same
backward too. Scored one by one, each pays for that pass again; the forward
is a third of a proxy's cost on CPU. Inside `sharing(net, inputs, targets)`
the first proxy that asks for a pass runs it and the others reuse it: the
same numbers, fewer passes. Outside such a block `probe_for` hands every
proxy a private Probe, so a proxy called on its own behaves as before.

What the forward records (ReLU codes for naswot, block outputs for AZ-NAS)
costs time, so it is recorded only when asked for: a proxy names what it
needs in `records`, and `sharing` is opened with the union of those.
"""
from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from functools import cached_property
from typing import Iterable, Iterator

import torch
from torch import nn
from torch.nn import functional as F

from .base import prunable_layers

RELU_KERNEL = "relu_kernel"  # naswot's agreement kernel of ReLU codes
BLOCK_OUTPUTS = "block_outputs"  # each block's output tensor, still in the autograd graph
RECORDS = frozenset({RELU_KERNEL, BLOCK_OUTPUTS})
EXACT_FLOAT32 = 2**24  # float32 counts integers exactly below this


def _is_relu(module: nn.Module) -> bool:
    return "ReLU" in type(module).__name__  # nn.ReLU and its kin, as the naswot reference matches them


def feature_blocks(net: nn.Module) -> list[nn.Module]:
    """The chain of blocks whose outputs AZ-NAS compares (stem, then every cell)."""
    blocks = getattr(net, "feature_blocks", None)
    if blocks is None:
        raise ValueError(f"{type(net).__name__} does not list its blocks (a feature_blocks() method)")
    return list(blocks())


@dataclass
class Forward:
    """One train-mode forward of the probe batch, graph kept for the backward passes."""

    inputs: torch.Tensor  # a copy that requires grad, so input-Jacobians can be taken
    logits: torch.Tensor
    records: frozenset[str]
    relu_kernel: torch.Tensor | None = None
    block_outputs: list[torch.Tensor] | None = None


def _agreement(codes: torch.Tensor) -> torch.Tensor:
    """For 0/1 codes (n x d): K_ij = #units where i and j agree = d - r_i - r_j + 2 c_i.c_j.

    One matmul instead of two; in float32 when every count is exact there.
    """
    d = codes.shape[1]
    dtype = torch.float32 if d < EXACT_FLOAT32 else torch.float64
    c = codes.to(dtype)
    ones = c.sum(1).double()
    return 2 * (c @ c.T).double() - ones[:, None] - ones[None, :] + d


class Probe:
    """A candidate's network and probe batch; each pass runs at most once."""

    def __init__(self, net: nn.Module, inputs: torch.Tensor, targets: torch.Tensor,
                 records: Iterable[str] = ()) -> None:
        self.net, self.inputs, self.targets = net, inputs, targets
        self.records = frozenset(records)
        unknown = self.records - RECORDS
        if unknown:
            raise ValueError(f"unknown forward records {sorted(unknown)}; known: {sorted(RECORDS)}")
        self._forward: Forward | None = None

    def matches(self, net: nn.Module, inputs: torch.Tensor, targets: torch.Tensor) -> bool:
        return net is self.net and inputs is self.inputs and targets is self.targets

    def forward(self, *records: str) -> Forward:
        """The shared train-mode forward, re-run only if it lacks a record asked for."""
        if self._forward is None or not set(records) <= self._forward.records:
            self._forward = self._run_forward(self.records | set(records))
            self.__dict__.pop("weight_gradients", None)  # derived from the old graph
            self.__dict__.pop("input_gradient", None)
        return self._forward

    def relu_kernel(self) -> torch.Tensor:
        """naswot's agreement kernel, from the shared forward (re-run if it did not record one)."""
        kernel = self.forward(RELU_KERNEL).relu_kernel
        assert kernel is not None  # a forward asked for RELU_KERNEL records it
        return kernel

    def block_outputs(self) -> list[torch.Tensor]:
        """Each feature block's output, still in the graph, from the shared forward (re-run if needed)."""
        outputs = self.forward(BLOCK_OUTPUTS).block_outputs
        assert outputs is not None  # a forward asked for BLOCK_OUTPUTS records them
        return outputs

    def _run_forward(self, records: frozenset[str]) -> Forward:
        net, n = self.net, len(self.inputs)
        hooks = []
        kernel = torch.zeros((n, n), dtype=torch.float64, device=self.inputs.device)
        outputs: list[torch.Tensor] = []
        if RELU_KERNEL in records:
            relus = [m for m in net.modules() if _is_relu(m)]
            if not relus:
                raise ValueError("naswot needs a network with ReLU modules")

            seen: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}  # ReLUs reading one tensor share its codes

            def record_codes(module, args, output) -> None:
                key = id(args[0])  # `seen` holds the tensor, so its id cannot be reused in this pass
                if key not in seen:
                    seen[key] = (args[0], _agreement(args[0].detach().reshape(n, -1) > 0))
                kernel.add_(seen[key][1])

            hooks += [m.register_forward_hook(record_codes) for m in relus]
        if BLOCK_OUTPUTS in records:
            hooks += [m.register_forward_hook(lambda module, args, output: outputs.append(output))
                      for m in feature_blocks(net)]
        try:
            net.train()
            x = self.inputs.detach().clone().requires_grad_(True)
            logits = net(x)
        finally:
            for handle in hooks:
                handle.remove()
        return Forward(x, logits, frozenset(records),
                       kernel if RELU_KERNEL in records else None,
                       outputs if BLOCK_OUTPUTS in records else None)

    @cached_property
    def weight_gradients(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """(weight, dL/dweight) of every conv/linear layer, L the batch's mean cross-entropy.

        An unreached weight gets a zero gradient. The caller's `.grad` fields are left alone.
        """
        weights = [m.weight for m in prunable_layers(self.net) if m.weight.requires_grad]
        if not weights:
            return []
        loss = F.cross_entropy(self.forward().logits, self.targets, reduction="mean")
        grads = torch.autograd.grad(loss, weights, allow_unused=True, retain_graph=True)
        return [(w, torch.zeros_like(w) if g is None else g) for w, g in zip(weights, grads)]

    @cached_property
    def input_gradient(self) -> torch.Tensor:
        """d(sum of logits)/d(inputs): each sample's input-Jacobian summed over classes."""
        fwd = self.forward()
        (grad,) = torch.autograd.grad(fwd.logits.sum(), fwd.inputs, retain_graph=True)
        return grad


_ACTIVE: ContextVar[Probe | None] = ContextVar("knas_active_probe", default=None)


def probe_for(net: nn.Module, inputs: torch.Tensor, targets: torch.Tensor) -> Probe:
    """The shared Probe of the enclosing `sharing` block for exactly these objects, else a private one."""
    active = _ACTIVE.get()
    if active is not None and active.matches(net, inputs, targets):
        return active
    return Probe(net, inputs, targets)


@contextmanager
def sharing(net: nn.Module, inputs: torch.Tensor, targets: torch.Tensor,
            records: Iterable[str] = ()) -> Iterator[Probe]:
    """Let the proxies called on (net, inputs, targets) inside the block share their passes."""
    probe = Probe(net, inputs, targets, records)
    token = _ACTIVE.set(probe)
    try:
        yield probe
    finally:
        _ACTIVE.reset(token)
