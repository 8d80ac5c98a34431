"""ImageNet16-120: NATS-Bench's 16×16 downsampled ImageNet, first 120 classes.

Files (pickle, latin1): `<data_dir>/ImageNet16/train_data_batch_1..10` and `val_data`,
each a dict with `data` (uint8 N×768, channel-planar 3×16×16) and `labels`
(1-based, 1..1000). Only labels <= 120 are kept, shifted to 0..119.
"train" = all train batches; the filtered val_data is split in fixed halves:
"valid" = first half, "test" = second half (not NATS-Bench's exact valid/test
index lists, but deterministic and disjoint). Training augmentation is
random crop with padding 2 plus horizontal flip.
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

INFO = DATASETS.info("imagenet16-120")
NUM_CLASSES = INFO.num_classes  # the first 120 of ImageNet's 1,000 classes
FOLDER = "ImageNet16"
TRAIN_FILES = [f"train_data_batch_{i}" for i in range(1, 11)]
VAL_FILE = "val_data"
HOW_TO_GET = (
    "download ImageNet16 as described in the NATS-Bench / AutoDL-Projects README "
    "(github.com/D-X-Y/NATS-Bench) and place its files in <dir>/ImageNet16/"
)


def _read(paths: list[Path]) -> tuple[np.ndarray, np.ndarray]:
    images, labels = [], []
    for path in paths:
        with open(check_trusted(path), "rb") as f:
            entry = pickle.load(f, encoding="latin1")
        lab = np.asarray(entry["labels"], dtype=np.int64)
        keep = lab <= NUM_CLASSES
        images.append(np.asarray(entry["data"], dtype=np.uint8).reshape(-1, 3, 16, 16)[keep])
        labels.append(lab[keep] - 1)
    return np.concatenate(images), np.concatenate(labels)


class ImageNet16:
    info = INFO

    def _root(self, data_dir: Path | None) -> Path:
        base = resolve_data_dir(data_dir)
        if base is None:
            raise not_found(self.info.name, None, HOW_TO_GET)
        root = base / FOLDER
        for name in (*TRAIN_FILES, VAL_FILE):
            if not (root / name).is_file():
                raise not_found(self.info.name, root / name, HOW_TO_GET, base)
        return root

    def check(self, data_dir: Path | None) -> None:
        self._root(data_dir)

    def load(self, split: str, data_dir: Path | None) -> tuple[torch.Tensor, torch.Tensor]:
        check_split(split)
        root = self._root(data_dir)
        if split == "train":
            images, labels = _read([root / f for f in TRAIN_FILES])
        else:
            images, labels = _read([root / VAL_FILE])
            half = len(labels) // 2
            sl = slice(0, half) if split == "valid" else slice(half, None)
            images, labels = images[sl], labels[sl]
        x = normalise(torch.from_numpy(np.ascontiguousarray(images)), self.info.mean, self.info.std)
        return x, torch.from_numpy(np.ascontiguousarray(labels))


IMAGENET16 = ImageNet16()
