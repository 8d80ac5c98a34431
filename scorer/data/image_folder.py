"""A registered image folder as a dataset plug-in: stream from disk, probe without loading all.

`load_image` is THE preprocessing (training, probe batches, export checks): only
PIL + torchvision functional ops, so a fresh process with torch, torchvision and
PIL reproduces it exactly. Folder validation and split listing live in the
torch-free `scorer.folders`.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch
import torchvision.transforms.v2.functional as TF
from PIL import Image
from torchvision.transforms import InterpolationMode

from scorer.data.base import DatasetInfo, DatasetNotFoundError, check_split
from scorer.folders import FolderSummary, check_unchanged, list_split

PREPROCESSING = (
    "Each image is opened with PIL and converted to RGB (3 channels) or L (greyscale, 1 channel), "
    "turned into a uint8 C×H×W tensor (torchvision.transforms.v2.functional.pil_to_tensor), "
    "resized to S×S without keeping the aspect ratio by bilinear interpolation with antialiasing "
    "applied to the uint8 tensor (torchvision.transforms.v2.functional.resize), converted to "
    "float32 and divided by 255, then normalised per channel as (x - mean) / std with the "
    "dataset's mean and std (torchvision.transforms.v2.functional.normalize); EXIF orientation "
    "is ignored."
)


def preprocessing_spec(summary: FolderSummary) -> dict:
    """The preprocessing as JSON-safe data (for the exported model card)."""
    mode = "RGB" if summary.channels == 3 else "L"
    return {
        "decode": f"PIL.Image.open(path).convert('{mode}')",
        "resize": [summary.image_size, summary.image_size],
        "interpolation": "bilinear",
        "antialias": True,
        "scale": "uint8 / 255",
        "mean": list(summary.mean),
        "std": list(summary.std),
        "layout": "NCHW float32",
    }


def load_image(
    path: str | Path, image_size: int, channels: int,
    mean: Sequence[float], std: Sequence[float],
) -> torch.Tensor:
    """One image as float32 C×S×S, exactly as described by PREPROCESSING."""
    with Image.open(path) as opened:
        im = opened.convert("RGB" if channels == 3 else "L")
    x = TF.pil_to_tensor(im)
    x = TF.resize(x, [image_size, image_size], interpolation=InterpolationMode.BILINEAR,
                  antialias=True)
    x = x.float() / 255
    return TF.normalize(x, list(mean), list(std))


class FolderSplit(torch.utils.data.Dataset):
    """One split, read image by image from disk (map-style; picklable for DataLoader workers)."""

    def __init__(self, summary: FolderSummary, split: str) -> None:
        items = list_split(summary, split)
        self.root = summary.root
        self.paths = [rel for rel, _ in items]
        self.labels = torch.tensor([label for _, label in items], dtype=torch.int64)
        self.image_size, self.channels = summary.image_size, summary.channels
        self.mean, self.std = list(summary.mean), list(summary.std)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        x = load_image(Path(self.root) / self.paths[i], self.image_size, self.channels,
                       self.mean, self.std)
        return x, int(self.labels[i])


def _batch_size(train_size: int) -> int:
    """A tenth of the train split as a power of two, within 16..256."""
    target = min(256, max(16, train_size // 10))
    return 1 << (target.bit_length() - 1)


class ImageFolderDataset:
    """The `Dataset` protocol over a registered folder (its FolderSummary)."""

    def __init__(self, name: str, summary: FolderSummary) -> None:
        self.summary = summary
        sizes = summary.sizes
        test = f"{sizes['test']} test" if "test" in sizes else "no test"
        self.info = DatasetInfo(
            name=name,
            num_classes=summary.num_classes,
            in_shape=(summary.channels, summary.image_size, summary.image_size),
            description=f"image folder {summary.root}: {sizes['train']} train / "
                        f"{sizes['valid']} valid / {test}",
            augment=True,
            batch_size=_batch_size(sizes["train"]),
            mean=tuple(summary.mean),
            std=tuple(summary.std),
        )
        self._splits: dict[str, FolderSplit] = {}

    def check(self, data_dir: Path | None = None) -> None:
        """Missing folder: DatasetNotFoundError; changed folder: ImageFolderError."""
        if not Path(self.summary.root).is_dir():
            raise DatasetNotFoundError(
                f"{self.info.name}: the image folder {self.summary.root} does not exist: restore "
                "it, or register the folder again (knas datasets add NAME PATH)"
            )
        check_unchanged(self.summary)

    def has_split(self, split: str) -> bool:
        """"train" and "valid" always exist; "test" only when the folder has test/."""
        return split in self.summary.counts

    def stream(self, split: str) -> FolderSplit:
        check_split(split)
        if split not in self._splits:
            self._splits[split] = FolderSplit(self.summary, split)
        return self._splits[split]

    def load(self, split: str, data_dir: Path | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The whole split in memory (small folders, tests); big ones should use `stream`."""
        data = self.stream(split)
        x = torch.stack([data[i][0] for i in range(len(data))]) if len(data) else torch.empty(
            0, *self.info.in_shape)
        return x, data.labels.clone()

    def probe(self, n: int, seed: int, split: str = "train") -> tuple[torch.Tensor, torch.Tensor]:
        """The batch `probe_batch` would draw from `load(split)`, reading only those n images."""
        data = self.stream(split)
        size = len(data)
        if n < 1 or n > size:
            raise ValueError(
                f"probe batch size {n} is not possible: the {split!r} split of "
                f"{self.info.name!r} has {size} examples"
            )
        idx = torch.randperm(size, generator=torch.Generator().manual_seed(int(seed)))[:n]
        x = torch.stack([data[int(i)][0] for i in idx])
        return x, data.labels.index_select(0, idx)
