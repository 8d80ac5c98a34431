"""NATS-Bench topology space (= NAS-Bench-201): 5 ops on the 6 edges of a 4-node cell.

Index order is the benchmark's: every cell enumerated with the edges of node 1,
then node 2, then node 3 (earlier edges vary slowest), ops in OP_NAMES order,
then shuffled with Python's `random.seed(88); random.shuffle(...)`.
"""
from __future__ import annotations

import itertools
import random
from functools import cached_property
from typing import Sequence

from .base import InvalidArchError, SearchSpace

OP_NAMES = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")  # = ops.OP_NAMES
EDGES = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))  # (node, input node)
EXAMPLE = "|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_1x1~0|skip_connect~1|skip_connect~2|"


def ops_to_arch(ops: Sequence[str]) -> str:
    """Six edge ops (EDGES order) -> `|op~0|+|op~0|op~1|+|op~0|op~1|op~2|`."""
    nodes = [[f"{ops[0]}~0"], [f"{ops[1]}~0", f"{ops[2]}~1"], [f"{ops[3]}~0", f"{ops[4]}~1", f"{ops[5]}~2"]]
    return "+".join("|" + "|".join(node) + "|" for node in nodes)


def arch_to_ops(arch: str) -> tuple[str, ...]:
    """Parse and check an arch string; the error names the first thing wrong."""
    if not isinstance(arch, str) or not arch.strip():
        raise InvalidArchError(f"nats-tss arch must be a string like {EXAMPLE!r}")
    nodes = arch.strip().split("+")
    if len(nodes) != 3:
        raise InvalidArchError(f"nats-tss arch needs 3 nodes joined by '+', got {len(nodes)} in {arch!r}")
    ops: list[str] = []
    for node_number, node in enumerate(nodes, start=1):
        if not (node.startswith("|") and node.endswith("|")):
            raise InvalidArchError(f"node {node_number} of {arch!r} must start and end with '|'")
        edges = node[1:-1].split("|")
        if len(edges) != node_number:
            raise InvalidArchError(f"node {node_number} of {arch!r} needs {node_number} inputs, got {len(edges)}")
        for expected_src, edge in enumerate(edges):
            op, sep, src = edge.partition("~")
            if not sep:
                raise InvalidArchError(f"edge {edge!r} in node {node_number} must look like 'op~input'")
            if op not in OP_NAMES:
                raise InvalidArchError(f"unknown op {op!r} in node {node_number}; ops are: {', '.join(OP_NAMES)}")
            if src != str(expected_src):
                raise InvalidArchError(
                    f"edge {edge!r} in node {node_number}: input #{expected_src + 1} must be node {expected_src}"
                )
            ops.append(op)
    return tuple(ops)


def genotype(arch: str) -> tuple[tuple[tuple[str, int], ...], ...]:
    ops = arch_to_ops(arch)
    return ((ops[0], 0),), ((ops[1], 0), (ops[2], 1)), ((ops[3], 0), (ops[4], 1), (ops[5], 2))


class NatsTopologySpace(SearchSpace):
    name = "nats-tss"
    description = "NATS-Bench topology space (NAS-Bench-201): 5 ops x 6 edges, 15,625 cells, C=16, N=5"
    example = EXAMPLE

    def __init__(self, channels: int = 16, cells_per_stage: int = 5) -> None:
        self.channels = channels
        self.cells_per_stage = cells_per_stage

    @cached_property
    def _archs(self) -> list[str]:
        archs = [ops_to_arch(ops) for ops in itertools.product(OP_NAMES, repeat=len(EDGES))]
        random.Random(88).shuffle(archs)  # the benchmark's own order
        return archs

    @cached_property
    def _indices(self) -> dict[str, int]:
        return {arch: i for i, arch in enumerate(self._archs)}

    @property
    def size(self) -> int:
        return len(OP_NAMES) ** len(EDGES)

    def arch(self, index: int) -> str:
        self._check_index(index)
        return self._archs[index]

    def validate(self, arch: str) -> str:
        return ops_to_arch(arch_to_ops(arch))

    def index(self, arch: str) -> int:
        return self._indices[self.validate(arch)]

    def gene_sizes(self) -> tuple[int, ...]:
        return (len(OP_NAMES),) * len(EDGES)

    def genes(self, arch: str) -> tuple[int, ...]:
        return tuple(OP_NAMES.index(op) for op in arch_to_ops(arch))

    def from_genes(self, genes: Sequence[int]) -> str:
        return ops_to_arch([OP_NAMES[g] for g in genes])

    def _widths(self) -> list[int]:
        c, n = self.channels, self.cells_per_stage
        return [c] * n + [2 * c] * (n + 1) + [4 * c] * (n + 1)

    def cost(self, arch: str, num_classes: int = 10, in_shape: Sequence[int] = (3, 32, 32)) -> tuple[int, int]:
        from .nats_cost import macro_net_cost

        n = self.cells_per_stage
        reductions = [False] * n + [True] + [False] * n + [True] + [False] * n  # = ops.stage_reductions(n)
        return macro_net_cost(genotype(arch), self._widths(), reductions, num_classes, in_shape)

    def build(self, arch: str, num_classes: int = 10, in_shape: Sequence[int] = (3, 32, 32)):
        from .ops import MacroNet, stage_reductions

        n = self.cells_per_stage
        return MacroNet(genotype(arch), self._widths(), stage_reductions(n), num_classes, in_channels=in_shape[0])
