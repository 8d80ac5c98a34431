"""What a search job asks for: one pydantic schema shared by the CLI, the API and the workers.

Validation here is torch-free (spaces validate arch strings in pure Python),
so the API can reject bad input without importing PyTorch.
"""
from __future__ import annotations

import random
import threading
from collections import OrderedDict
from typing import Annotated, Any, Literal, Sequence, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from scorer.data import DATASETS
from scorer.spaces import SPACES, InvalidArchError, SearchSpace


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RandomCandidates(_Spec):
    strategy: Literal["random"] = "random"
    n: int = Field(default=100, ge=1, description="how many distinct archs to sample")


class AllCandidates(_Spec):
    strategy: Literal["all"] = "all"


class ListedCandidates(_Spec):
    strategy: Literal["list"] = "list"
    archs: list[str] = Field(min_length=1, description="arch strings of the space")


class EvolutionCandidates(_Spec):
    """(μ + λ) evolution (scorer/evolution.py): generation 0 is `population` random archs within budget; each
    generation then adds `children` new archs bred from the fittest scored so far, scored on the workers."""

    strategy: Literal["evolution"] = "evolution"
    population: int = Field(default=20, ge=2, le=10_000, description="generation 0's size, and the parents' pool")
    generations: int = Field(default=5, ge=1, le=1_000, description="generations bred after generation 0")
    children: int | None = Field(default=None, ge=1, le=10_000, description="new archs per generation "
                                                                             "(default: population)")
    tournament: int = Field(default=5, ge=2, le=1_000, description="a parent is the fittest of this many drawn")
    crossover: float = Field(default=0.0, ge=0.0, le=1.0, description="chance a child crosses two parents first")
    mutations: int = Field(default=1, ge=1, le=16, description="genes changed in every child")

    @property
    def per_generation(self) -> int:
        return self.children if self.children is not None else self.population

    @property
    def total(self) -> int:
        return self.population + self.generations * self.per_generation


CandidatesSpec = Annotated[Union[RandomCandidates, AllCandidates, ListedCandidates, EvolutionCandidates],
                           Field(discriminator="strategy")]


class TrainStage(_Spec):
    mode: Literal["train"] = "train"
    epochs: int = Field(default=12, ge=1, le=200)
    batch_size: int | None = Field(default=None, ge=1, le=4096, description="default: the dataset's (256 for CIFAR)")
    lr: float = Field(default=0.1, gt=0, le=10)
    keep_checkpoints: bool = Field(default=False, description=(
        "keep every top-k training's last checkpoint after the job ends (default: only the winner's)"))
    retrain_epochs: int = Field(default=0, ge=0, le=1000, description=(
        "after the top-k pick, train the winner again from its initial weights for this many epochs with the "
        "full recipe (augmentation, cosine schedule); those weights are the exported model (0: no retraining)"))


class BenchmarkStage(_Spec):
    mode: Literal["benchmark"] = "benchmark"
    hp: str = Field(default="12", description="benchmark schedule: '12' or '200' epochs (tss)")


class NoFinalStage(_Spec):
    mode: Literal["none"] = "none"


FinalStage = Annotated[Union[TrainStage, BenchmarkStage, NoFinalStage], Field(discriminator="mode")]


class ProxySpec(_Spec):
    # The default is the best ranker in docs/benchmarks.md (measured, not fitted); mgm stays available.
    name: str = Field(default="ensemble", description="registered proxy name")
    batch_size: int = Field(default=64, ge=1, le=4096, description="probe batch: samples each candidate is scored on")
    repeats: int = Field(default=1, ge=1, le=8, description=(
        "score each candidate this many times, each with its own probe batch and initialisation; "
        "ranking uses the mean, and the spread flags near-ties at the top-k cut"))
    options: dict[str, Any] = Field(default_factory=dict)
    cache: bool = Field(default=True, description=(
        "reuse scores from the lab-wide score cache (any job's, same inputs exactly) and add new ones"))


class Constraints(_Spec):
    max_params: int | None = Field(default=None, ge=1, description=(
        "only archs with at most this many parameters (at the dataset's classes) are candidates"))
    max_flops: int | None = Field(default=None, ge=1, description=(
        "only archs with at most this many multiply-accumulates per sample (at the dataset's input size) "
        "are candidates"))

    @property
    def active(self) -> bool:
        return self.max_params is not None or self.max_flops is not None

    def describe(self) -> str:
        parts = [f"constraints.{k}={v:,}" for k, v in (("max_params", self.max_params), ("max_flops", self.max_flops))
                 if v is not None]
        return " and ".join(parts)

    def fits(self, params: int, flops: int) -> bool:
        return ((self.max_params is None or params <= self.max_params)
                and (self.max_flops is None or flops <= self.max_flops))


RANDOM_TRIES = 200  # a budgeted random draw gives up after RANDOM_TRIES * n draws (at most MAX_DRAWS),
MAX_DRAWS = 1_000_000  # or as soon as the rate of archs within budget says that many draws cannot give n
_RESOLVED: "OrderedDict[tuple, tuple[str, ...]]" = OrderedDict()  # recent budgeted resolutions (validation reuses)
_RESOLVED_LOCK = threading.Lock()


class JobSpec(_Spec):
    space: str = Field(default="nats-tss", description="search space (`knas spaces`)")
    dataset: str = "digits"
    candidates: CandidatesSpec = Field(default_factory=RandomCandidates)
    proxy: ProxySpec = Field(default_factory=ProxySpec)
    seed: int = Field(default=0, ge=0, le=2**31 - 1)
    top_k: int = Field(default=5, ge=0, description="candidates passed to the final stage")
    final: FinalStage = Field(default_factory=TrainStage)
    priority: int = Field(default=0, ge=0, le=9, description="0..9, higher runs first")
    constraints: Constraints = Field(default_factory=Constraints, description=(
        "budgets: archs over them are never candidates (params and MACs by the space's formula)"))

    @field_validator("space")
    @classmethod
    def _known_space(cls, value: str) -> str:
        return SPACES.canonical(value)  # UnknownNameError is a ValueError: pydantic reports it

    @field_validator("candidates")
    @classmethod
    def _enumerable(cls, value: Any, info: ValidationInfo) -> Any:
        space = SPACES.get(info.data["space"]) if "space" in info.data else None
        if isinstance(value, AllCandidates) and space is not None and not space.enumerable:
            raise ValueError(f"strategy 'all': {space.all_refusal()}")
        return value

    @field_validator("constraints")
    @classmethod
    def _budget_can_be_met(cls, value: Constraints, info: ValidationInfo) -> Constraints:
        """With a built-in dataset the budgeted candidates are drawn now: an impossible budget fails here."""
        if not value.active or not {"space", "dataset", "candidates", "seed"} <= set(info.data):
            return value
        space = SPACES.get(info.data["space"])
        if type(space).cost is SearchSpace.cost:
            raise ValueError(f"{space.name} has no cost formula, so it takes no constraints")
        shape = _dataset_shape(info.data["dataset"])
        if shape is not None:
            candidates = info.data["candidates"]
            if isinstance(candidates, EvolutionCandidates):
                candidates = RandomCandidates(n=candidates.population)
            _resolve(space, candidates, info.data["seed"], value, *shape)
        return value

    @model_validator(mode="after")
    def _consistent(self) -> "JobSpec":
        space = SPACES.get(self.space)
        if isinstance(self.candidates, RandomCandidates) and self.candidates.n > space.size:
            raise ValueError(f"candidates.n={self.candidates.n} is larger than {self.space}, which has {space.size} archs")
        if isinstance(self.candidates, EvolutionCandidates):
            if self.candidates.total > space.size:
                raise ValueError(f"candidates: evolution would score {self.candidates.total} archs, more than "
                                 f"{self.space} has ({space.size})")
            try:
                space.gene_sizes()
            except NotImplementedError as error:
                raise ValueError(f"candidates.strategy: {error}") from None
        if isinstance(self.candidates, ListedCandidates):
            seen = set()
            for position, arch in enumerate(self.candidates.archs):
                try:
                    canonical = space.validate(arch)
                except InvalidArchError as error:
                    raise ValueError(f"candidates.archs[{position}]: {error}") from None
                if canonical in seen:
                    raise ValueError(f"candidates.archs[{position}] repeats {canonical!r}")
                seen.add(canonical)
        if self.top_k == 0 and self.final.mode != "none":
            raise ValueError(f"top_k=0 leaves nothing for final.mode={self.final.mode!r}: "
                             f"pass top_k >= 1, or final.mode='none' to stop after ranking")
        if self.top_k > self.candidate_count:
            raise ValueError(f"top_k={self.top_k} is larger than the {self.candidate_count} candidates")
        return self

    @property
    def candidate_count(self) -> int:
        """How many candidates the job has: what `resolve_archs()` returns.

        Under constraints, strategy 'all' counts the archs within budget at a built-in dataset's shape;
        for another dataset (an image folder) the space's size is an upper bound until `resolve_archs`
        is given its classes and shape.
        """
        if isinstance(self.candidates, RandomCandidates):
            return self.candidates.n
        if isinstance(self.candidates, ListedCandidates):
            return len(self.candidates.archs)
        if isinstance(self.candidates, EvolutionCandidates):
            return self.candidates.total  # generation 0 plus every generation's children
        if self.constraints.active and _dataset_shape(self.dataset) is not None:
            return len(self.resolve_archs())
        return SPACES.get(self.space).size

    @property
    def generations(self) -> int:
        """Generations bred after generation 0: evolution's `generations`; 0 for a strategy that draws
        every candidate up front."""
        return self.candidates.generations if isinstance(self.candidates, EvolutionCandidates) else 0

    def resolve_archs(self, num_classes: int | None = None, in_shape: Sequence[int] | None = None) -> list[str]:
        """The job's candidate arch strings, canonical and deterministic for the seed.

        Under constraints only archs within budget are candidates; their params and MACs are taken
        at `num_classes` and `in_shape` (C, H, W), by default a built-in dataset's. A budget that
        cannot give the candidates asked for raises ValueError naming `constraints`.
        """
        space = SPACES.get(self.space)
        candidates = self.candidates
        if isinstance(candidates, EvolutionCandidates):  # generation 0; later ones are bred from scores
            candidates = RandomCandidates(n=candidates.population)
        if self.constraints.active:
            shape = _dataset_shape(self.dataset)
            if num_classes is None or in_shape is None:
                if shape is None:
                    raise ValueError(f"{self.constraints.describe()}: dataset {self.dataset!r} is not built in, so "
                                     f"pass its num_classes and in_shape to resolve_archs")
                num_classes = shape[0] if num_classes is None else num_classes
                in_shape = shape[1] if in_shape is None else in_shape
            return list(_resolve(space, candidates, self.seed, self.constraints, num_classes, in_shape))
        if isinstance(candidates, RandomCandidates):
            return space.sample(self.seed, candidates.n)
        if isinstance(candidates, ListedCandidates):
            return [space.validate(a) for a in candidates.archs]
        return space.all()


def _dataset_shape(dataset: str) -> tuple[int, tuple[int, int, int]] | None:
    """(num_classes, in_shape) of a built-in (or plug-in) dataset, None for any other name."""
    if dataset not in DATASETS:
        return None
    info = DATASETS.info(dataset)
    channels, height, width = info.in_shape
    return info.num_classes, (channels, height, width)


def _resolve(space: SearchSpace, candidates: Any, seed: int, constraints: Constraints, num_classes: int,
             in_shape: Sequence[int]) -> tuple[str, ...]:
    """The budgeted candidates (remembered for a while: validation resolves, then the job reuses it)."""
    in_shape = tuple(int(s) for s in in_shape)
    key = (space.name, candidates.model_dump_json(), seed, constraints.max_params, constraints.max_flops,
           int(num_classes), in_shape)
    with _RESOLVED_LOCK:
        if key in _RESOLVED:
            _RESOLVED.move_to_end(key)
            return _RESOLVED[key]
    archs = tuple(_within_budget(space, candidates, seed, constraints, int(num_classes), in_shape))
    with _RESOLVED_LOCK:
        _RESOLVED[key] = archs
        while len(_RESOLVED) > 16:
            _RESOLVED.popitem(last=False)
    return archs


def _within_budget(space: SearchSpace, candidates: Any, seed: int, constraints: Constraints, num_classes: int,
                   in_shape: tuple[int, ...]) -> list[str]:
    where = f"at {num_classes} classes and {'x'.join(map(str, in_shape))} input"

    def cost(arch: str) -> tuple[int, int]:
        return space.cost(arch, num_classes, in_shape)

    def too_tight(found: str) -> ValueError:
        return ValueError(f"{constraints.describe()}: {found} ({where}), and the job asks for {wanted:,}; "
                          f"raise the budget or ask for fewer candidates")

    wanted = candidates.n if isinstance(candidates, RandomCandidates) else 1
    if isinstance(candidates, ListedCandidates):
        archs = []
        for position, arch in enumerate(candidates.archs):
            try:
                arch = space.validate(arch)
            except InvalidArchError as error:
                raise ValueError(f"candidates.archs[{position}]: {error}") from None
            params, flops = cost(arch)
            if not constraints.fits(params, flops):
                raise ValueError(f"candidates.archs[{position}] ({arch!r}) has {params:,} params and {flops:,} MACs "
                                 f"{where}, over {constraints.describe()}")
            archs.append(arch)
        return archs
    cheapest = space.cheapest_arch()
    if cheapest is not None and not constraints.fits(*cost(cheapest)):
        params, flops = cost(cheapest)
        raise ValueError(f"{constraints.describe()}: no arch of {space.name} fits; the smallest, {cheapest!r}, has "
                         f"{params:,} params and {flops:,} MACs {where}")
    if isinstance(candidates, AllCandidates):
        archs = [a for a in space.all() if constraints.fits(*cost(a))]
        if not archs:
            raise too_tight(f"none of {space.name}'s {space.size:,} archs fit")
        return archs
    n = candidates.n
    rng = random.Random(seed)
    found: dict[str, None] = {}
    limit = min(RANDOM_TRIES * n, MAX_DRAWS)
    draws = 0
    while draws < limit:
        draws += 1
        arch = space.arch(rng.randrange(space.size))
        if arch not in found and constraints.fits(*cost(arch)):
            found[arch] = None
            if len(found) == n:
                return list(found)
        if draws % 1000 == 0 and (len(found) + 1) * limit < draws * n / 2:
            break  # even at twice the rate seen so far, `limit` draws would not give n
    if space.enumerable:  # rare archs, or nearly all of them asked for: count them all and sample from those
        fitting = [a for a in space.all() if constraints.fits(*cost(a))]
        if len(fitting) < n:
            raise too_tight(f"only {len(fitting):,} of {space.name}'s {space.size:,} archs fit")
        return random.Random(seed).sample(fitting, n)
    raise too_tight(f"only {len(found):,} of {draws:,} random draws from {space.name} ({space.size:,} archs) fit")
