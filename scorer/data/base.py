"""What a dataset plug-in provides.

A dataset loads whole splits as tensors: probe batches are tiny and the
embedded sets are small, and the big ones (CIFAR, ImageNet16) still fit in
memory as uint8 before normalisation. Splits: "train", "valid", "test".
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import torch

SPLITS = ("train", "valid", "test")


class DatasetNotFoundError(FileNotFoundError):
    """The dataset's files are not where the settings say; the message says how to get them."""


@dataclass(frozen=True)
class DatasetInfo:
    name: str
    num_classes: int
    in_shape: tuple[int, int, int]  # (channels, height, width) after preprocessing
    description: str
    embedded: bool = False  # needs no files under the data directory
    augment: bool = False  # random crop + flip during training (natural images)
    batch_size: int = 256  # default training batch: NAS-Bench-201's 256, smaller for the tiny sets
    mean: tuple[float, ...] = field(default=())
    std: tuple[float, ...] = field(default=())


class Dataset(Protocol):
    info: DatasetInfo

    def load(self, split: str, data_dir: Path | None) -> tuple[torch.Tensor, torch.Tensor]:
        """Return (images float32 N×C×H×W normalised, labels int64 N) for `split`."""

    def check(self, data_dir: Path | None) -> None:
        """Raise DatasetNotFoundError (naming the path and how to get the data) if missing."""
