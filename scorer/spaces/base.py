"""The SearchSpace contract every space plug-in follows.

Everything but `build` is pure Python (no torch import), so the API can
validate and count archs without loading PyTorch.
"""
from __future__ import annotations

import random
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Sequence

if TYPE_CHECKING:  # pragma: no cover
    from torch import nn


class InvalidArchError(ValueError):
    """An arch string that does not belong to the space; the message says why."""


class SearchSpace(ABC):
    name: str
    description: str
    example: str  # one valid arch string, for help texts
    enumerable: bool = True  # False: too big for `all()` (the `all` strategy is refused)

    @property
    @abstractmethod
    def size(self) -> int: ...

    @abstractmethod
    def arch(self, index: int) -> str:
        """The arch string at the benchmark's `index`."""

    @abstractmethod
    def index(self, arch: str) -> int:
        """The benchmark index of `arch` (validated first)."""

    @abstractmethod
    def validate(self, arch: str) -> str:
        """Return the canonical form of `arch`, or raise InvalidArchError saying what is wrong."""

    @abstractmethod
    def build(self, arch: str, num_classes: int = 10, in_shape: Sequence[int] = (3, 32, 32)) -> "nn.Module":
        """A randomly initialised network for `arch` (seed the RNG before calling)."""

    def sample(self, rng: random.Random | int, n: int) -> list[str]:
        """`n` distinct archs drawn uniformly, deterministic for an int seed."""
        if not 0 <= n <= self.size:
            raise ValueError(f"cannot sample {n} archs from {self.name}, which has {self.size}")
        rng = random.Random(rng) if isinstance(rng, int) else rng
        return [self.arch(i) for i in rng.sample(range(self.size), n)]

    def all(self) -> list[str]:
        if not self.enumerable:
            raise ValueError(self.all_refusal())
        return [self.arch(i) for i in range(self.size)]

    def all_refusal(self) -> str:
        return f"{self.name} has {self.size:,} archs; use candidates.strategy 'random' or 'evolution'"

    def cheapest_arch(self) -> str | None:
        """An arch with both the fewest parameters and the fewest MACs of the space, where one is known."""
        return None

    def cost(self, arch: str, num_classes: int = 10, in_shape: Sequence[int] = (3, 32, 32)) -> tuple[int, int]:
        """(parameters, multiply-accumulates of one sample's forward) of `build(arch, ...)`, torch-free.

        Counted as the `params` and `flops` proxies count the built net; budgets (JobSpec.constraints) use it.
        """
        raise NotImplementedError(f"{self.name} has no cost formula, so budgets cannot be applied to it")

    # ------------------------------------------------------------ genes (evolutionary search)
    # An arch as a tuple of choices, gene i one of `gene_sizes()[i]` options: mutation and crossover
    # (scorer/evolution.py) work on genes, so they are written once for every space.

    def gene_sizes(self) -> tuple[int, ...]:
        raise NotImplementedError(f"{self.name} has no gene encoding, so it cannot be searched by evolution")

    def genes(self, arch: str) -> tuple[int, ...]:
        raise NotImplementedError(f"{self.name} has no gene encoding, so it cannot be searched by evolution")

    def from_genes(self, genes: Sequence[int]) -> str:
        raise NotImplementedError(f"{self.name} has no gene encoding, so it cannot be searched by evolution")

    def _check_index(self, index: int) -> None:
        if not isinstance(index, int) or not 0 <= index < self.size:
            raise InvalidArchError(f"{self.name} index must be an integer in [0, {self.size - 1}], got {index!r}")
