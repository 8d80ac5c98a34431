"""Splits and probe batches as tensors: the torch half of `scorer.data`.

Scoring only ever needs small, reproducible probe batches, so the public
surface is `probe_batch` (deterministic in (dataset, n, seed)) on top of
`load_split`, which caches loaded splits in-process so that repeated probes
do not re-read files.
"""
from __future__ import annotations

import functools
from pathlib import Path
from typing import Sequence

import torch

from .base import Dataset, check_split, resolve_data_dir
from .registry import DATASETS


def normalise(images: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """uint8 N×C×H×W -> float32 in [0, 1], then per-channel (x - mean) / std."""
    x = images.to(torch.float32).div_(255.0)
    m = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
    return x.sub_(m).div_(s).contiguous()


def _dataset_name(dataset: str | Dataset) -> str:
    return DATASETS.canonical(dataset if isinstance(dataset, str) else dataset.info.name)  # type: ignore[attr-defined]


@functools.lru_cache(maxsize=8)
def _load_cached(name: str, split: str, dir_key: str) -> tuple[torch.Tensor, torch.Tensor]:
    return DATASETS.get(name).load(split, Path(dir_key) if dir_key else None)


def load_split(
    dataset: str | Dataset, split: str, data_dir: Path | str | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """(images float32 N×C×H×W, labels int64 N) for one split, cached per process.

    The returned tensors are shared by later calls: do not modify them in place.
    """
    check_split(split)
    name = _dataset_name(dataset)
    if DATASETS.info(name).embedded:
        dir_key = ""
    else:
        resolved = resolve_data_dir(data_dir)
        dir_key = str(resolved) if resolved is not None else ""
    return _load_cached(name, split, dir_key)


def clear_cache() -> None:
    """Drop all cached splits (frees memory; tests use it after rewriting files)."""
    _load_cached.cache_clear()


def probe_batch(
    dataset: str | Dataset,
    n: int,
    seed: int,
    data_dir: Path | str | None = None,
    split: str = "train",
) -> tuple[torch.Tensor, torch.Tensor]:
    """`n` examples drawn without replacement from `split`; the same (dataset, n, seed) always
    gives the same batch (a CPU torch.Generator seeded by `seed` picks the indices).

    Datasets that stream from disk (image folders) read only the `n` images they need."""
    source = DATASETS.get(_dataset_name(dataset)) if isinstance(dataset, str) else dataset
    if hasattr(source, "probe"):
        return source.probe(n, seed, split=split)
    images, labels = load_split(dataset, split, data_dir)
    size = labels.shape[0]
    if n < 1 or n > size:
        raise ValueError(
            f"probe batch size {n} is not possible: the {split!r} split of "
            f"{_dataset_name(dataset)!r} has {size} examples"
        )
    gen = torch.Generator().manual_seed(int(seed))
    idx = torch.randperm(size, generator=gen)[:n]
    return images.index_select(0, idx), labels.index_select(0, idx)
