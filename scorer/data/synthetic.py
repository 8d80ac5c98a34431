"""A generated, learnable image set: runs anywhere, needs no files, costs nothing to load.

10 classes of 3×32×32 images. Each class has a fixed smooth random template
(coarse 4×4 Gaussian noise upsampled bilinearly, seeded by a constant); a sample is
its class template circularly shifted by up to ±SHIFT pixels plus per-pixel
Gaussian noise, scaled to unit variance. Each split uses its own fixed seed, so
splits are disjoint draws and identical in every process.
"""
from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F

from scorer.data.base import check_split
from scorer.data.registry import DATASETS

INFO = DATASETS.info("synthetic")
NUM_CLASSES = INFO.num_classes
SHAPE = INFO.in_shape
TEMPLATE_SEED = 0
SPLIT_SEEDS = {"train": 1, "valid": 2, "test": 3}
SPLIT_SIZES = {"train": 2000, "valid": 500, "test": 500}
NOISE = 2.0
SHIFT = 8


def _templates() -> torch.Tensor:
    gen = torch.Generator().manual_seed(TEMPLATE_SEED)
    coarse = torch.randn(NUM_CLASSES, SHAPE[0], 4, 4, generator=gen)
    smooth = F.interpolate(coarse, size=SHAPE[1:], mode="bilinear", align_corners=False)
    return (smooth - smooth.mean()) / smooth.std()


def generate(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """`n` class-balanced samples (labels permuted) drawn with generator seed `seed`."""
    gen = torch.Generator().manual_seed(seed)
    labels = (torch.arange(n) % NUM_CLASSES)[torch.randperm(n, generator=gen)]
    shifts = torch.randint(-SHIFT, SHIFT + 1, (n, 2), generator=gen)
    base = _templates()[labels]
    images = torch.stack(
        [torch.roll(img, (int(dy), int(dx)), dims=(1, 2)) for img, (dy, dx) in zip(base, shifts)]
    ) if n else base
    images = images + NOISE * torch.randn(images.shape, generator=gen)
    return (images / (1.0 + NOISE**2) ** 0.5).float().contiguous(), labels.long()


class Synthetic:
    info = INFO

    def check(self, data_dir: Path | None) -> None:
        """Always available."""

    def load(self, split: str, data_dir: Path | None) -> tuple[torch.Tensor, torch.Tensor]:
        check_split(split)
        return generate(SPLIT_SIZES[split], SPLIT_SEEDS[split])


SYNTHETIC = Synthetic()
