"""What a search job asks for: one pydantic schema shared by the CLI, the API and the workers.

Validation here is torch-free (spaces validate arch strings in pure Python),
so the API can reject bad input without importing PyTorch.
"""
from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from scorer.spaces import SPACES, InvalidArchError


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


CandidatesSpec = Annotated[Union[RandomCandidates, AllCandidates, ListedCandidates], Field(discriminator="strategy")]


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


class JobSpec(_Spec):
    space: str = "nats-tss"
    dataset: str = "digits"
    candidates: CandidatesSpec = Field(default_factory=RandomCandidates)
    proxy: ProxySpec = Field(default_factory=ProxySpec)
    seed: int = Field(default=0, ge=0, le=2**31 - 1)
    top_k: int = Field(default=5, ge=0, description="candidates passed to the final stage")
    final: FinalStage = Field(default_factory=TrainStage)
    priority: int = Field(default=0, ge=0, le=9, description="0..9, higher runs first")

    @field_validator("space")
    @classmethod
    def _known_space(cls, value: str) -> str:
        return SPACES.canonical(value)  # UnknownNameError is a ValueError: pydantic reports it

    @model_validator(mode="after")
    def _consistent(self) -> "JobSpec":
        space = SPACES.get(self.space)
        if isinstance(self.candidates, RandomCandidates) and self.candidates.n > space.size:
            raise ValueError(f"candidates.n={self.candidates.n} is larger than {self.space}, which has {space.size} archs")
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
        if isinstance(self.candidates, RandomCandidates):
            return self.candidates.n
        if isinstance(self.candidates, ListedCandidates):
            return len(self.candidates.archs)
        return SPACES.get(self.space).size

    def resolve_archs(self) -> list[str]:
        """The job's candidate arch strings, canonical and deterministic for the seed."""
        space = SPACES.get(self.space)
        if isinstance(self.candidates, RandomCandidates):
            return space.sample(self.seed, self.candidates.n)
        if isinstance(self.candidates, ListedCandidates):
            return [space.validate(a) for a in self.candidates.archs]
        return space.all()
