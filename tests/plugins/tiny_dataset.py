"""A test-only dataset plug-in: 3x8x8 images, 64/32/32 samples, so training steps take milliseconds.

Imported by tests/conftest.py, and by worker subprocesses through KNAS_PLUGINS=tiny_dataset.
"""
from __future__ import annotations


def _register() -> None:
    """A test-only dataset plug-in: 3×8×8 images, 64/32/32 samples, so training steps take milliseconds."""
    import torch

    from scorer.data import DATASETS
    from scorer.data.base import DatasetInfo

    class Tiny:
        info = DatasetInfo(name="tiny", num_classes=4, in_shape=(3, 8, 8), description="test-only",
                           embedded=True, batch_size=32)
        sizes = {"train": 64, "valid": 32, "test": 32}

        def load(self, split, data_dir):
            g = torch.Generator().manual_seed({"train": 1, "valid": 2, "test": 3}[split])
            y = torch.randint(0, 4, (self.sizes[split],), generator=g)
            x = torch.randn(len(y), 3, 8, 8, generator=g) + y.view(-1, 1, 1, 1).float()
            return x, y

        def check(self, data_dir):
            return None

    if "tiny" not in DATASETS:
        DATASETS.add("tiny", Tiny())
    from scorer import catalog

    catalog.DATASETS["tiny"] = catalog.DatasetEntry("tiny", 4, (3, 8, 8), embedded=True)


_register()
