"""scikit-learn's handwritten digits: a small real dataset that ships with a dependency.

1,797 8×8 grayscale images (0..16) scaled to [0, 1], upsampled bilinearly to
16×16 so ordinary conv stems apply, then standardised with the whole-set
mean/std. A fixed seeded shuffle then splits train 1,297 / valid 250 / test 250.
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from scorer.data.base import check_split
from scorer.data.registry import DATASETS

SHUFFLE_SEED = 0
SIZES = {"train": 1297, "valid": 250, "test": 250}
INFO = DATASETS.info("digits")
# mean/std of all 1,797 upsampled images in [0, 1], declared with the metadata (recomputed in tests/scorer/test_data.py)
(MEAN,), (STD,) = INFO.mean, INFO.std


class Digits:
    info = INFO

    def check(self, data_dir: Path | None) -> None:
        """Always available (bundled with scikit-learn)."""

    @staticmethod
    def raw() -> tuple[torch.Tensor, torch.Tensor]:
        """All 1,797 images upsampled to 1×16×16 in [0, 1] (unshuffled, unnormalised)."""
        from sklearn.datasets import load_digits  # lazy: only this dataset needs sklearn

        bunch = load_digits()
        x = torch.tensor(bunch.data, dtype=torch.float32).view(-1, 1, 8, 8) / 16.0
        x = F.interpolate(x, size=(16, 16), mode="bilinear", align_corners=False)
        return x, torch.tensor(bunch.target, dtype=torch.int64)

    def load(self, split: str, data_dir: Path | None) -> tuple[torch.Tensor, torch.Tensor]:
        check_split(split)
        x, y = self.raw()
        order = torch.randperm(len(y), generator=torch.Generator().manual_seed(SHUFFLE_SEED))
        start = {"train": 0, "valid": SIZES["train"], "test": SIZES["train"] + SIZES["valid"]}
        idx = order[start[split] : start[split] + SIZES[split]]
        return ((x[idx] - MEAN) / STD).contiguous(), y[idx]


DIGITS = Digits()
