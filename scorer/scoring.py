"""Score one candidate: build its seeded network and apply a proxy."""
from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass, field

import torch

from .proxies import Proxy, get_proxy
from .seeding import seeded
from .spaces import SearchSpace, get_space


LOWEST = -sys.float_info.max  # stored instead of -inf, which JSON and some databases refuse


@dataclass(frozen=True)
class ScoreResult:
    score: float | None  # None for rank-aggregating proxies: their score needs the whole candidate set
    seconds: float
    params: int
    scores: dict[str, float] = field(default_factory=dict)  # every proxy computed, by name


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
    parts = [get_proxy(name) for name in proxy.components] or [proxy]
    inputs, targets = inputs.to(device), targets.to(device)
    scores: dict[str, float] = {}
    seconds = 0.0
    params = 0
    for part in parts:
        # a fresh, identically seeded net per proxy: proxies may change BN statistics or weights
        net = build_candidate(space, arch, seed, num_classes, inputs.shape[1:]).to(device)
        params = sum(p.numel() for p in net.parameters())
        start = time.perf_counter()
        with seeded(seed):  # proxies that draw random numbers stay deterministic
            value = part(net, inputs, targets)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        seconds += time.perf_counter() - start
        if math.isnan(value) or value == math.inf:
            raise FloatingPointError(f"{part.name} gave a non-finite score ({value}) for {arch}")
        if value == -math.inf:  # e.g. naswot on a net that cannot tell inputs apart: the worst score
            value = LOWEST
        scores[part.name] = value
    score = None if proxy.components else scores[proxy.name]
    return ScoreResult(score=score, seconds=seconds, params=params, scores=scores)
