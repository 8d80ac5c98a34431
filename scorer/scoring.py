"""Score one candidate: build its seeded network and apply a proxy."""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch

from .proxies import Proxy, get_proxy
from .seeding import seeded
from .spaces import SearchSpace, get_space


@dataclass(frozen=True)
class ScoreResult:
    score: float
    seconds: float
    params: int


def build_candidate(space: SearchSpace | str, arch: str, seed: int, num_classes: int, in_shape) -> torch.nn.Module:
    """The candidate's network, its weights a function of `seed` alone."""
    space = get_space(space) if isinstance(space, str) else space
    with seeded(seed):
        return space.build(arch, num_classes=num_classes, in_shape=tuple(in_shape))


def score_arch(
    space: SearchSpace | str,
    arch: str,
    proxy: Proxy | str,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    seed: int,
    num_classes: int,
    device: str = "cpu",
) -> ScoreResult:
    proxy = get_proxy(proxy) if isinstance(proxy, str) else proxy
    net = build_candidate(space, arch, seed, num_classes, inputs.shape[1:]).to(device)
    params = sum(p.numel() for p in net.parameters())
    inputs, targets = inputs.to(device), targets.to(device)
    start = time.perf_counter()
    with seeded(seed):  # proxies that draw random numbers stay deterministic
        score = proxy(net, inputs, targets)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    if not math.isfinite(score):
        raise FloatingPointError(f"{proxy.name} gave a non-finite score ({score}) for {arch}")
    return ScoreResult(score=score, seconds=seconds, params=params)
