"""NATS-Bench size space: the channels of 5 layers, each from {8, 16, ..., 64}.

The cell is fixed (NATS-Bench's choice) and the skeleton has one cell per
stage: cell, ResNet block, cell, ResNet block, cell. Index order: all 8^5
configs with the first layer varying slowest ("8:8:8:8:8" is 0).
"""
from __future__ import annotations

import itertools
from functools import cached_property
from typing import Sequence

from .base import InvalidArchError, SearchSpace
from .nats_tss import genotype

CHANNEL_CHOICES = (8, 16, 24, 32, 40, 48, 56, 64)
NUM_LAYERS = 5
CELL = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
EXAMPLE = "64:32:48:8:16"


def parse_channels(arch: str) -> tuple[int, ...]:
    if not isinstance(arch, str) or not arch.strip():
        raise InvalidArchError(f"nats-sss arch must be a string like {EXAMPLE!r}")
    parts = arch.strip().split(":")
    if len(parts) != NUM_LAYERS:
        raise InvalidArchError(f"nats-sss arch needs {NUM_LAYERS} channel counts joined by ':', got {len(parts)} in {arch!r}")
    channels = []
    for layer, part in enumerate(parts):
        if not part.strip().isdigit() or int(part) not in CHANNEL_CHOICES:
            raise InvalidArchError(
                f"layer {layer} of {arch!r} has {part!r} channels; choose from {', '.join(map(str, CHANNEL_CHOICES))}"
            )
        channels.append(int(part))
    return tuple(channels)


class NatsSizeSpace(SearchSpace):
    name = "nats-sss"
    description = "NATS-Bench size space: channels of 5 layers from {8..64}, 32,768 configs, fixed cell"
    example = EXAMPLE

    @property
    def size(self) -> int:
        return len(CHANNEL_CHOICES) ** NUM_LAYERS

    @cached_property
    def _archs(self) -> list[str]:
        return [":".join(map(str, c)) for c in itertools.product(CHANNEL_CHOICES, repeat=NUM_LAYERS)]

    def arch(self, index: int) -> str:
        self._check_index(index)
        return self._archs[index]

    def validate(self, arch: str) -> str:
        return ":".join(map(str, parse_channels(arch)))

    def index(self, arch: str) -> int:
        index = 0
        for c in parse_channels(arch):
            index = index * len(CHANNEL_CHOICES) + CHANNEL_CHOICES.index(c)
        return index

    def gene_sizes(self) -> tuple[int, ...]:
        return (len(CHANNEL_CHOICES),) * NUM_LAYERS

    def genes(self, arch: str) -> tuple[int, ...]:
        return tuple(CHANNEL_CHOICES.index(c) for c in parse_channels(arch))

    def from_genes(self, genes: Sequence[int]) -> str:
        return ":".join(str(CHANNEL_CHOICES[g]) for g in genes)

    def cost(self, arch: str, num_classes: int = 10, in_shape: Sequence[int] = (3, 32, 32)) -> tuple[int, int]:
        from .nats_cost import macro_net_cost

        return macro_net_cost(genotype(CELL), parse_channels(arch), (False, True, False, True, False),
                              num_classes, in_shape)

    def build(self, arch: str, num_classes: int = 10, in_shape: Sequence[int] = (3, 32, 32)):
        from .ops import MacroNet, stage_reductions

        channels = list(parse_channels(arch))
        return MacroNet(genotype(CELL), channels, stage_reductions(1), num_classes, in_channels=in_shape[0])
