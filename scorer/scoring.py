"""Score one candidate: build its seeded network and apply a proxy."""
from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass, field
from typing import Sequence

import torch

from .proxies import Proxy, get_proxy
from .proxies.probe import sharing
from .seeding import seeded
from .spaces import SearchSpace, get_space


LOWEST = -sys.float_info.max  # stored instead of -inf, which JSON and some databases refuse


@dataclass(frozen=True)
class ScoreResult:
    score: float | None  # None for rank-aggregating proxies: their score needs the whole candidate set
    seconds: float
    params: int
    scores: dict[str, float] = field(default_factory=dict)  # every proxy computed, by name
    part_seconds: dict[str, float] = field(default_factory=dict)  # each one's share of `seconds`


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
    """One proxy's score of `arch`; a rank-aggregating proxy gets its components' scores instead."""
    proxy = get_proxy(proxy) if isinstance(proxy, str) else proxy
    result = score_parts(space, arch, list(proxy.components) or [proxy.name], inputs, targets, seed,
                         num_classes, device)
    score = None if proxy.components else result.scores[proxy.name]
    return ScoreResult(score=score, seconds=result.seconds, params=result.params, scores=result.scores,
                       part_seconds=result.part_seconds)


def score_parts(
    space: SearchSpace | str,
    arch: str,
    proxies: Sequence[Proxy | str],
    inputs: torch.Tensor,
    targets: torch.Tensor,
    seed: int,
    num_classes: int,
    device: str = "cpu",
) -> ScoreResult:
    """Several per-net proxies of one candidate, sharing one seeded net and its probe passes.

    No proxy changes the net's weights, and the train-mode ones do not read BatchNorm's running
    statistics, so one net serves them all; a test holds each score to the proxy scored alone.
    """
    parts = [get_proxy(p) if isinstance(p, str) else p for p in proxies]
    # passes of their own first: the shared forward's graph stays alive until the last part
    parts.sort(key=lambda part: part.shares_forward)
    net = build_candidate(space, arch, seed, num_classes, inputs.shape[1:]).to(device)
    inputs, targets = inputs.to(device), targets.to(device)
    if device == "cpu":  # oneDNN's NHWC convolutions: about 1.3x faster forward + backward on CPU
        net = net.to(memory_format=torch.channels_last)
        inputs = inputs.contiguous(memory_format=torch.channels_last)
    params = sum(p.numel() for p in net.parameters())
    records = {r for part in parts for r in part.records}
    scores: dict[str, float] = {}
    part_seconds: dict[str, float] = {}
    with sharing(net, inputs, targets, records):
        for part in parts:
            start = time.perf_counter()
            with seeded(seed):  # proxies that draw random numbers stay deterministic
                value = part(net, inputs, targets)
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            part_seconds[part.name] = time.perf_counter() - start  # a shared pass counts for the proxy that ran it
            if math.isnan(value) or value == math.inf:
                raise FloatingPointError(f"{part.name} gave a non-finite score ({value}) for {arch}")
            if value == -math.inf:  # e.g. naswot on a net that cannot tell inputs apart: the worst score
                value = LOWEST
            scores[part.name] = value
    return ScoreResult(score=None, seconds=sum(part_seconds.values()), params=params, scores=scores,
                       part_seconds=part_seconds)
