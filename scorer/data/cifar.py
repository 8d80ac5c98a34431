"""CIFAR-10 / CIFAR-100 from the official python-pickle release (the files torchvision uses).

Read with plain `pickle` so torchvision is not a dependency. Splits are fixed,
not random, so every worker sees the same data: "train" = the first 90% of the
official training set (45,000 of 50,000), "valid" = its last 10% (5,000),
"test" = the official test set.
"""
from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import torch

from scorer.data.base import check_split, not_found, resolve_data_dir
from scorer.data.loading import normalise
from scorer.data.registry import DATASETS
from scorer.trusted import check_trusted

VALID_FRACTION = 0.1  # 5,000 of the 50,000 official training images


def _read_batches(paths: list[Path], label_key: str) -> tuple[np.ndarray, np.ndarray]:
    images, labels = [], []
    for path in paths:
        with open(check_trusted(path), "rb") as f:
            entry = pickle.load(f, encoding="latin1")
        images.append(np.asarray(entry["data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
        labels.append(np.asarray(entry[label_key], dtype=np.int64))
    return np.concatenate(images), np.concatenate(labels)


class Cifar:
    """One CIFAR variant: where its files live and which label key it uses (its metadata is the registry's)."""

    def __init__(
        self, name: str, folder: str, train_files: list[str], test_file: str,
        label_key: str, torchvision_class: str, tarball: str,
    ) -> None:
        self.info = DATASETS.info(name)
        self.folder = folder
        self.train_files = train_files
        self.test_file = test_file
        self.label_key = label_key
        self.torchvision_class = torchvision_class
        self.tarball = tarball

    def _root(self, data_dir: Path | None) -> Path:
        base = resolve_data_dir(data_dir)
        how = (
            f"python -c \"import torchvision; torchvision.datasets.{self.torchvision_class}"
            f"('<dir>', download=True)\", or extract {self.tarball} into <dir> "
            f"(it creates <dir>/{self.folder}/)"
        )
        if base is None:
            raise not_found(self.info.name, None, how)
        root = base / self.folder
        for name in (*self.train_files, self.test_file):
            if not (root / name).is_file():
                raise not_found(self.info.name, root / name, how, base)
        return root

    def check(self, data_dir: Path | None) -> None:
        self._root(data_dir)

    def load(self, split: str, data_dir: Path | None) -> tuple[torch.Tensor, torch.Tensor]:
        check_split(split)
        root = self._root(data_dir)
        files = [self.test_file] if split == "test" else self.train_files
        images, labels = _read_batches([root / f for f in files], self.label_key)
        if split != "test":
            n_valid = int(round(len(labels) * VALID_FRACTION))
            cut = len(labels) - n_valid
            sl = slice(0, cut) if split == "train" else slice(cut, None)
            images, labels = images[sl], labels[sl]
        x = normalise(torch.from_numpy(np.ascontiguousarray(images)), self.info.mean, self.info.std)
        return x, torch.from_numpy(np.ascontiguousarray(labels))


CIFAR10 = Cifar(
    "cifar10",
    folder="cifar-10-batches-py",
    train_files=[f"data_batch_{i}" for i in range(1, 6)],
    test_file="test_batch",
    label_key="labels",
    torchvision_class="CIFAR10",
    tarball="https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
)

CIFAR100 = Cifar(
    "cifar100",
    folder="cifar-100-python",
    train_files=["train"],
    test_file="test",
    label_key="fine_labels",
    torchvision_class="CIFAR100",
    tarball="https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
)
