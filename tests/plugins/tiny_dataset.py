"""A test-only dataset plug-in: 3x8x8 images, 64/32/32 samples, so training steps take milliseconds.

Imported by tests/conftest.py, and by worker subprocesses through KNAS_PLUGINS=tests.plugins.tiny_dataset
(their working directory, or PYTHONPATH, is the repository root).
It registers once, metadata and loader together, as a site plug-in does (knas/plugins.py);
torch is imported only when a split is loaded, so listing it stays torch-free.
"""
from __future__ import annotations

from scorer.data import DATASETS, DatasetInfo

SIZES = {"train": 64, "valid": 32, "test": 32}


class Tiny:
    """Each class is Gaussian noise shifted by its label: learnable in a few steps."""

    def load(self, split, data_dir):
        import torch

        g = torch.Generator().manual_seed({"train": 1, "valid": 2, "test": 3}[split])
        y = torch.randint(0, 4, (SIZES[split],), generator=g)
        x = torch.randn(len(y), 3, 8, 8, generator=g) + y.view(-1, 1, 1, 1).float()
        return x, y

    def check(self, data_dir):
        return None


DATASETS.add(DatasetInfo(name="tiny", num_classes=4, in_shape=(3, 8, 8), description="test-only", embedded=True,
                         batch_size=32), Tiny())
