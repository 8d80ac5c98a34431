"""scikit-learn's handwritten digits: a small real dataset that ships with a dependency.

1,797 8×8 grayscale images (0..16) scaled to [0, 1], upsampled bilinearly to
16×16 so ordinary conv stems apply, then standardised with the whole-set
mean/std. A fixed seeded shuffle then splits train 1,297 / valid 250 / test 250.
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from scorer.data import DATASETS, check_split
from scorer.data.base import DatasetInfo

SHUFFLE_SEED = 0
SIZES = {"train": 1297, "valid": 250, "test": 250}
# mean/std of all 1,797 upsampled images in [0, 1] (recomputed in tests/scorer/test_data.py)
MEAN, STD = 0.3053, 0.3189


class Digits:
    info = DatasetInfo(
        name="digits",
        num_classes=10,
        in_shape=(1, 16, 16),
        description="scikit-learn load_digits, upsampled to 16×16; "
        "train 1297 / valid 250 / test 250",
        embedded=True,
        batch_size=32,
        mean=(MEAN,),
        std=(STD,),
    )

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


DATASETS.add("digits", Digits())
