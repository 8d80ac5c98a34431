"""Dataset registry: named plug-ins that load whole splits as normalised tensors.

Scoring only ever needs small, reproducible probe batches, so the public
surface is `probe_batch` (deterministic in (dataset, n, seed)) on top of
`load_split`, which caches loaded splits in-process so that repeated probes
do not re-read files.

File-based datasets look under `data_dir`, which callers take from settings
(KNAS_DATA_DIR); the scorer itself never reads the environment. Nothing is
ever downloaded.
"""
from __future__ import annotations

import functools
from pathlib import Path
from typing import Sequence

import torch

from scorer.data.base import SPLITS, Dataset, DatasetInfo, DatasetNotFoundError
from scorer.registry import Registry, UnknownNameError

DATASETS: Registry[Dataset] = Registry("dataset")

DATA_DIR_ENV = "KNAS_DATA_DIR"


def resolve_data_dir(data_dir: Path | str | None) -> Path | None:
    """`data_dir` as a Path, or None when no data directory is configured."""
    return Path(data_dir).expanduser() if data_dir is not None else None


def not_found(
    what: str, path: Path | None, how_to_get: str, base: Path | None = None
) -> DatasetNotFoundError:
    """A DatasetNotFoundError that names the path looked at and how to fix it.

    `<dir>` in `how_to_get` is replaced by the data directory `base` when known.
    """
    if base is not None:
        how_to_get = how_to_get.replace("<dir>", str(base))
    where = (
        f"looked for {path}" if path is not None
        else f"no data directory is configured ({DATA_DIR_ENV} is not set)"
    )
    return DatasetNotFoundError(
        f"{what} not found: {where}. Set {DATA_DIR_ENV} (or pass data_dir) to your data folder "
        f"(the one that should contain it). To get it: {how_to_get}. "
        "knas never downloads data itself."
    )


def normalise(images: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """uint8 N×C×H×W -> float32 in [0, 1], then per-channel (x - mean) / std."""
    x = images.to(torch.float32).div_(255.0)
    m = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
    return x.sub_(m).div_(s).contiguous()


def check_split(split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose one of: {', '.join(SPLITS)}")


# Plug-ins register themselves on import (they need DATASETS and the helpers above).
from scorer.data import cifar, digits, imagenet16, npz_folder, synthetic  # noqa: E402,F401


def get_dataset(name: str) -> Dataset:
    """The registered dataset for `name` (or an alias); UnknownNameError lists the names."""
    return DATASETS.get(name)


def list_datasets() -> list[str]:
    return DATASETS.names()


def _dataset_name(dataset: str | Dataset) -> str:
    return DATASETS.canonical(dataset if isinstance(dataset, str) else dataset.info.name)


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
    if DATASETS.get(name).info.embedded:
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


__all__ = [
    "DATASETS",
    "SPLITS",
    "Dataset",
    "DatasetInfo",
    "DatasetNotFoundError",
    "UnknownNameError",
    "clear_cache",
    "get_dataset",
    "list_datasets",
    "load_split",
    "probe_batch",
]
