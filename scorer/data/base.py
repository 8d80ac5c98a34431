"""What a dataset plug-in is: its metadata (DatasetInfo) and the loader protocol. Torch-free.

A dataset loads whole splits as tensors: probe batches are tiny and the
embedded sets are small, and the big ones (CIFAR, ImageNet16) still fit in
memory as uint8 before normalisation. Splits: "train", "valid", "test".
The helpers here (where the data directory is, what to say when files are
missing) need no torch, so loaders and the torch-free registry share them.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:  # pragma: no cover
    import torch

SPLITS = ("train", "valid", "test")
DATA_DIR_ENV = "KNAS_DATA_DIR"


class DatasetNotFoundError(FileNotFoundError):
    """The dataset's files are not where the settings say; the message says how to get them."""


@dataclass(frozen=True)
class DatasetInfo:
    """Everything known about a dataset without loading it (the registry's metadata)."""

    name: str
    num_classes: int
    in_shape: tuple[int, int, int]  # (channels, height, width) after preprocessing
    description: str
    embedded: bool = False  # needs no files under the data directory
    augment: bool = False  # random crop + flip during training (natural images)
    batch_size: int = 256  # default training batch: NAS-Bench-201's 256, smaller for the tiny sets
    mean: tuple[float, ...] = field(default=())
    std: tuple[float, ...] = field(default=())
    files: tuple[str, ...] = ()  # paths under the data directory that must all exist (when not embedded)
    benchmark_name: str | None = None  # NATS-Bench's name for it, where NATS-Bench trained every arch on it

    @property
    def benchmark(self) -> bool:
        """Whether final.mode "benchmark" can look its accuracies up (scorer/benchmark.py)."""
        return self.benchmark_name is not None

    def present(self, data_dir: Path | None) -> bool:
        """Whether a job on it would find its files under `data_dir` (without reading them)."""
        if self.embedded:
            return True
        if data_dir is None:
            return False
        return all((Path(data_dir) / f).exists() for f in self.files)


class Dataset(Protocol):
    """A dataset's implementation; its metadata is the registry's (`DATASETS.info(name)`)."""

    def load(self, split: str, data_dir: Path | None) -> tuple["torch.Tensor", "torch.Tensor"]:
        """Return (images float32 N×C×H×W normalised, labels int64 N) for `split`."""

    def check(self, data_dir: Path | None) -> None:
        """Raise DatasetNotFoundError (naming the path and how to get the data) if missing."""


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


def check_split(split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose one of: {', '.join(SPLITS)}")
