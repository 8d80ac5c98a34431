"""A small real CIFAR-10 sample stored as NumPy .npz files (no pickle, a few MB).

Layout of /work/shared/data/cifar10-sample: `*train*.npz` and `*test*.npz`, each
with `images` (uint8 N×32×32×3, HWC), `labels` (int64) and `classes`. Looked up at
`<data_dir>/cifar10-sample/`, or at `<data_dir>` itself when it holds `*_train_*.npz`.

The train file is grouped by class, so holding out its literal last 100 images
would remove a whole class from "train". Instead a fixed permutation (constant
seed) is applied first: "valid" = the last 100 permuted train images, "train" =
the rest, "test" = the test file. The data is read in place, never copied.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from scorer.data.base import check_split, not_found, resolve_data_dir
from scorer.data.loading import normalise
from scorer.data.registry import DATASETS

FOLDER = "cifar10-sample"
VALID_SIZE = 100
SPLIT_SEED = 0
HOW_TO_GET = (
    "copy a folder with cifar10_train_*.npz and cifar10_test_*.npz (keys images, labels, "
    "classes; e.g. the project's shared/data/cifar10-sample) to <dir>/cifar10-sample/"
)


def _find(folder: Path, pattern: str) -> Path:
    matches = sorted(folder.glob(pattern)) if folder.is_dir() else []
    if not matches:
        raise not_found("cifar10-sample", folder / pattern, HOW_TO_GET)
    if len(matches) > 1:
        names = ", ".join(m.name for m in matches)
        raise ValueError(f"cifar10-sample: several files match {folder / pattern}: {names}")
    return matches[0]


class NpzFolder:
    info = DATASETS.info("cifar10-sample")

    def _folder(self, data_dir: Path | None) -> Path:
        base = resolve_data_dir(data_dir)
        if base is None:
            raise not_found(self.info.name, None, HOW_TO_GET)
        return base if any(base.glob("*_train_*.npz")) else base / FOLDER

    def _files(self, data_dir: Path | None) -> tuple[Path, Path]:
        folder = self._folder(data_dir)
        return _find(folder, "*train*.npz"), _find(folder, "*test*.npz")

    def check(self, data_dir: Path | None) -> None:
        self._files(data_dir)

    def load(self, split: str, data_dir: Path | None) -> tuple[torch.Tensor, torch.Tensor]:
        check_split(split)
        train_file, test_file = self._files(data_dir)
        with np.load(test_file if split == "test" else train_file, allow_pickle=False) as z:
            images, labels, classes = z["images"], z["labels"].astype(np.int64), z["classes"]
        if len(classes) != self.info.num_classes:
            raise ValueError(f"{self.info.name}: expected {self.info.num_classes} classes, "
                             f"the file lists {len(classes)}")
        x = torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2)))
        y = torch.from_numpy(labels)
        if split != "test":
            order = torch.randperm(len(y), generator=torch.Generator().manual_seed(SPLIT_SEED))
            cut = len(y) - VALID_SIZE
            idx = order[:cut] if split == "train" else order[cut:]
            x, y = x[idx], y[idx]
        return normalise(x, self.info.mean, self.info.std), y.contiguous()


CIFAR10_SAMPLE = NpzFolder()
