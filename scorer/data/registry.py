"""The dataset registry: every built-in dataset declared once, here. Torch-free.

Each declaration is the dataset's metadata (DatasetInfo: classes, input shape, preprocessing
constants, the files that must exist) and a lazy "module:attribute" reference to its loader,
imported on the first `DATASETS.get`. The API, spec validation and the CLI's listings read the
metadata without importing torch. A site plug-in (KNAS_PLUGINS) registers the same way, once:
`DATASETS.add(DatasetInfo(...), loader_or_reference, *aliases)`.
"""
from __future__ import annotations

from ..registry import Registry
from .base import Dataset, DatasetInfo

DATASETS: Registry[DatasetInfo, Dataset] = Registry("dataset")

_CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
_CIFAR10_STD = (0.2470, 0.2435, 0.2616)

DATASETS.add(DatasetInfo(
    name="cifar10",
    num_classes=10,
    in_shape=(3, 32, 32),
    description="CIFAR-10 (official pickles); train 45k / valid 5k (last of train) / test 10k",
    augment=True,
    mean=_CIFAR10_MEAN,
    std=_CIFAR10_STD,
    files=tuple(f"cifar-10-batches-py/{n}" for n in [*(f"data_batch_{i}" for i in range(1, 6)), "test_batch"]),
    benchmark_name="cifar10",
), "scorer.data.cifar:CIFAR10", "cifar-10")

DATASETS.add(DatasetInfo(
    name="cifar100",
    num_classes=100,
    in_shape=(3, 32, 32),
    description="CIFAR-100 fine labels (official pickles); train 45k / valid 5k / test 10k",
    augment=True,
    mean=(0.5071, 0.4865, 0.4409),
    std=(0.2673, 0.2564, 0.2762),
    files=("cifar-100-python/train", "cifar-100-python/test"),
    benchmark_name="cifar100",
), "scorer.data.cifar:CIFAR100", "cifar-100")

DATASETS.add(DatasetInfo(
    name="cifar10-sample",
    num_classes=10,
    in_shape=(3, 32, 32),
    description="real CIFAR-10 sample in .npz (JPEG-decoded); train 900 / valid 100 / test 1000",
    augment=True,
    batch_size=64,
    mean=_CIFAR10_MEAN,
    std=_CIFAR10_STD,
    files=("cifar10-sample",),
), "scorer.data.npz_folder:CIFAR10_SAMPLE", "npz")

DATASETS.add(DatasetInfo(
    name="digits",
    num_classes=10,
    in_shape=(1, 16, 16),
    description="scikit-learn load_digits, upsampled to 16×16; train 1297 / valid 250 / test 250",
    embedded=True,
    batch_size=32,
    # mean/std of all 1,797 upsampled images in [0, 1] (recomputed in tests/scorer/test_data.py)
    mean=(0.3053,),
    std=(0.3189,),
), "scorer.data.digits:DIGITS")

DATASETS.add(DatasetInfo(
    name="imagenet16-120",
    num_classes=120,
    in_shape=(3, 16, 16),
    description="ImageNet 16×16, classes 1-120 (NATS-Bench); valid/test = halves of val_data; "
    "augment: crop padding 2 + flip",
    augment=True,
    mean=(122.68 / 255, 116.66 / 255, 104.01 / 255),
    std=(63.22 / 255, 61.26 / 255, 65.09 / 255),
    files=tuple(f"ImageNet16/{n}" for n in [*(f"train_data_batch_{i}" for i in range(1, 11)), "val_data"]),
    benchmark_name="ImageNet16-120",
), "scorer.data.imagenet16:IMAGENET16", "imagenet16")

DATASETS.add(DatasetInfo(
    name="synthetic",
    num_classes=10,
    in_shape=(3, 32, 32),
    description="generated: smooth class templates + random shift + Gaussian noise; "
    "train 2000 / valid 500 / test 500",
    embedded=True,
    batch_size=64,
    mean=(0.0, 0.0, 0.0),
    std=(1.0, 1.0, 1.0),
), "scorer.data.synthetic:SYNTHETIC")


def benchmark_datasets() -> list[str]:
    """The datasets NATS-Bench has results for (final.mode "benchmark"), by name."""
    return [info.name for info in DATASETS.infos() if info.benchmark]
