"""Evolutionary search over any space with genes: tournament selection, mutation, uniform crossover.

Pure Python (no torch): the fitness of every candidate scored so far comes in, the next
generation's children (with their parents) go out. Everything random draws from one
`random.Random` the caller seeds per generation, and every collection is walked in a fixed order,
so the same scores give the same children in any process — what makes an evolution job
deterministic whether one process or many workers scored it.

The scheme is the (μ + λ) evolution of the training-free literature (Zen-NAS, ZiCo, AZ-NAS): the
population is the μ fittest candidates scored so far (elitist: a good arch never dies of age);
each child takes a parent by tournament (the fittest of T drawn from the population), optionally
crosses it with a second, then changes `mutations` genes to another value; a child already seen
(or over the budget) is drawn again, a bounded number of times.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Callable, Mapping, Sequence

from .spaces import SearchSpace


@dataclass(frozen=True)
class Child:
    arch: str
    parents: tuple[str, ...]  # one parent (mutation) or two (crossover, then mutation)


def population(fitness: Mapping[str, float], size: int) -> list[str]:
    """The `size` fittest archs (ties broken by arch string, so the order never depends on dict order)."""
    return sorted(fitness, key=lambda arch: (-fitness[arch], arch))[:size]


def tournament(pool: Sequence[str], fitness: Mapping[str, float], size: int, rng: random.Random) -> str:
    """The fittest of `size` archs drawn without replacement from `pool`."""
    drawn = rng.sample(list(pool), min(size, len(pool)))
    return min(drawn, key=lambda arch: (-fitness[arch], arch))


def mutate(space: SearchSpace, genes: Sequence[int], rng: random.Random, mutations: int = 1) -> tuple[int, ...]:
    """`mutations` distinct genes, each changed to another of its values."""
    sizes = space.gene_sizes()
    out = list(genes)
    for position in rng.sample([i for i, n in enumerate(sizes) if n > 1], min(mutations, len(sizes))):
        out[position] = rng.choice([v for v in range(sizes[position]) if v != out[position]])
    return tuple(out)


def crossover(a: Sequence[int], b: Sequence[int], rng: random.Random) -> tuple[int, ...]:
    """Uniform crossover: each gene from either parent with probability 1/2."""
    return tuple(x if rng.random() < 0.5 else y for x, y in zip(a, b))


def breed(space: SearchSpace, fitness: Mapping[str, float], seen: set[str], *, children: int, population_size: int,
          tournament_size: int, rng: random.Random, crossover_rate: float = 0.0, mutations: int = 1,
          allowed: Callable[[str], bool] = lambda arch: True, tries_per_child: int = 200) -> list[Child]:
    """The next generation: up to `children` new archs (never in `seen`, all `allowed`), each with its parents.

    Fewer come back only when `tries_per_child` draws in a row found nothing new (a nearly exhausted
    or very tight space); the caller decides what that means.
    """
    pool = population(fitness, population_size)
    if not pool:
        return []
    taken = set(seen)
    out: list[Child] = []
    while len(out) < children:
        for _ in range(tries_per_child):
            first = tournament(pool, fitness, tournament_size, rng)
            genes = space.genes(first)
            parents: tuple[str, ...] = (first,)
            if crossover_rate and len(pool) > 1 and rng.random() < crossover_rate:
                second = tournament([a for a in pool if a != first], fitness, tournament_size, rng)
                genes, parents = crossover(genes, space.genes(second), rng), (first, second)
            arch = space.from_genes(mutate(space, genes, rng, mutations))
            if arch not in taken and allowed(arch):
                taken.add(arch)
                out.append(Child(arch, parents))
                break
        else:
            return out  # nothing new within reach
    return out
