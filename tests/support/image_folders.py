"""Write real image folders (ImageFolder layout) from the shared CIFAR-10 sample, for tests."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from .require import require_shared

SAMPLE = "cifar10-sample"


def _load(which: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
    path = require_shared(f"{SAMPLE}/cifar10_{which}_1000.npz")
    with np.load(path, allow_pickle=False) as z:
        return z["images"], z["labels"], [str(c) for c in z["classes"]]


def _write(folder: Path, images: np.ndarray, fmt: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for i, image in enumerate(images):
        Image.fromarray(image).save(folder / f"{i:04d}.{fmt}")


def make_image_folder(
    root: Path,
    per_class: int = 10,
    classes: int = 10,
    with_valid: bool = False,
    with_test: bool = True,
    test_per_class: int | None = None,
    fmt: str = "png",
) -> Path:
    """root/train/<class>/NNNN.<fmt> (+ test/, valid/) from real CIFAR-10 images; returns root.

    train takes the first `per_class` images of each class of the train sample, valid
    (if asked) the last max(2, per_class // 5) of it, test the first `test_per_class`
    (default `per_class`) of the test sample.
    """
    root = Path(root)
    train_images, train_labels, names = _load("train")
    n_valid = max(2, per_class // 5)
    for c in range(classes):
        of_class = train_images[train_labels == c]
        _write(root / "train" / names[c], of_class[:per_class], fmt)
        if with_valid:
            _write(root / "valid" / names[c], of_class[-n_valid:], fmt)
    if with_test:
        test_images, test_labels, _ = _load("test")
        k = per_class if test_per_class is None else test_per_class
        for c in range(classes):
            _write(root / "test" / names[c], test_images[test_labels == c][:k], fmt)
    return root
