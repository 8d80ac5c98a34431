"""Bring-your-own image folders: validation, splits, fingerprints, preprocessing, streaming."""
from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from scorer.folders import (
    FolderSummary,
    ImageFolderError,
    check_unchanged,
    fingerprint,
    list_split,
    scan_folder,
    within_roots,
)
from tests.support.image_folders import make_image_folder
from tests.support.paths import REPO

CLASSES = ["airplane", "automobile", "bird", "cat", "deer",
           "dog", "frog", "horse", "ship", "truck"]


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return make_image_folder(tmp_path / "cifar", per_class=20)


def _noise_images(folder: Path, count: int, size: tuple[int, int], mode: str = "RGB",
                  seed: int = 0) -> None:
    """`count` random images of `size` (width, height) in `folder`."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    shape = (size[1], size[0], 3) if mode == "RGB" else (size[1], size[0])
    for i in range(count):
        Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode).save(folder / f"{i:03d}.png")


# ------------------------------------------------------------------ a good folder


def test_scan_cifar_folder(folder: Path) -> None:
    s = scan_folder(folder)
    assert s.root == str(folder.resolve())
    assert s.classes == CLASSES and s.num_classes == 10
    assert s.counts["train"] == {c: 18 for c in CLASSES}
    assert s.counts["valid"] == {c: 2 for c in CLASSES}
    assert s.counts["test"] == {c: 20 for c in CLASSES}
    assert s.sizes == {"train": 180, "valid": 20, "test": 200}
    assert (s.image_size, s.channels, s.valid_source) == (32, 3, "held-out")
    np.testing.assert_allclose(s.mean, [0.4914, 0.4822, 0.4465], atol=0.03)
    np.testing.assert_allclose(s.std, [0.247, 0.243, 0.261], atol=0.03)
    assert FolderSummary.from_dict(s.to_dict()) == s
    import json
    assert FolderSummary.from_dict(json.loads(json.dumps(s.to_dict()))) == s


def test_mean_std_are_over_train_pixels_after_holdout(folder: Path) -> None:
    s = scan_folder(folder)
    pixels = np.stack([np.asarray(Image.open(folder / rel), dtype=np.float64) / 255
                       for rel, _ in list_split(s, "train")])
    np.testing.assert_allclose(s.mean, pixels.mean(axis=(0, 1, 2)), rtol=0, atol=1e-12)
    np.testing.assert_allclose(s.std, pixels.std(axis=(0, 1, 2)), rtol=0, atol=1e-12)


def test_held_out_valid_is_stratified_seeded_and_disjoint(folder: Path) -> None:
    for f in sorted((folder / "train" / "cat").iterdir())[2:]:  # cat keeps 2 images
        f.unlink()
    s = scan_folder(folder, split_seed=7)
    train, valid = list_split(s, "train"), list_split(s, "valid")
    assert s.counts["valid"]["cat"] == 1 and s.counts["train"]["cat"] == 1  # at least 1 held out
    assert all(s.counts["valid"][c] == 2 for c in CLASSES if c != "cat")
    assert not {p for p, _ in train} & {p for p, _ in valid}
    every = sorted(f"train/{c}/{f.name}" for c in CLASSES for f in (folder / "train" / c).iterdir())
    assert sorted(p for p, _ in train + valid) == every
    assert all(p.split("/")[1] == CLASSES[label] for p, label in train + valid)
    # the documented rule: random.Random(split_seed) shuffles each class's sorted file list
    files = sorted(f"train/dog/{f.name}" for f in (folder / "train" / "dog").iterdir())
    random.Random(7).shuffle(files)
    assert sorted(p for p, _ in valid if "/dog/" in p) == sorted(files[:2])
    assert list_split(scan_folder(folder, split_seed=7), "valid") == valid
    assert list_split(scan_folder(folder, split_seed=8), "valid") != valid
    assert train == sorted(train, key=lambda item: (item[1], item[0]))


def test_valid_folder_is_used_when_present(tmp_path: Path) -> None:
    root = make_image_folder(tmp_path / "f", per_class=10, classes=3, with_valid=True,
                             with_test=False)
    s = scan_folder(root)
    assert s.valid_source == "folder"
    assert s.sizes == {"train": 30, "valid": 6}
    assert "test" not in s.counts
    from scorer.data.image_folder import ImageFolderDataset

    assert not ImageFolderDataset("lab", s).has_split("test")
    assert all(p.startswith("valid/") for p, _ in list_split(s, "valid"))
    assert len(list_split(s, "train")) == 30
    with pytest.raises(ImageFolderError, match="no test/ folder"):
        list_split(s, "test")


def test_valid_folder_may_lack_a_class(tmp_path: Path) -> None:
    root = make_image_folder(tmp_path / "f", per_class=5, classes=3, with_valid=True)
    for f in (root / "valid" / "bird").iterdir():
        f.unlink()
    (root / "valid" / "bird").rmdir()
    s = scan_folder(root)
    assert s.counts["valid"] == {"airplane": 2, "automobile": 2, "bird": 0}


def test_hidden_and_non_image_files_are_ignored(tmp_path: Path) -> None:
    root = make_image_folder(tmp_path / "f", per_class=5, classes=2)
    (root / "train" / "airplane" / "notes.txt").write_text("not an image")
    (root / "train" / "airplane" / ".hidden.png").write_bytes(b"garbage")
    (root / "train" / ".DS_Store").write_bytes(b"x")
    (root / "train" / ".cache").mkdir()
    Image.open(root / "train" / "airplane" / "0000.png").save(root / "train" / "airplane" / "UP.JPG")
    s = scan_folder(root)
    assert s.classes == ["airplane", "automobile"]
    assert s.counts["train"]["airplane"] + s.counts["valid"]["airplane"] == 6


# ------------------------------------------------------------------ fingerprint


def test_fingerprint_notices_touched_and_added_files(folder: Path) -> None:
    s = scan_folder(folder)
    assert fingerprint(folder) == s.fingerprint
    check_unchanged(s)

    target = folder / "train" / "cat" / "0003.png"
    st = target.stat()
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns + 5_000_000_000))
    assert fingerprint(folder) != s.fingerprint
    with pytest.raises(ImageFolderError, match=r"changed since it was registered.*knas datasets add"):
        check_unchanged(s)

    s2 = scan_folder(folder)
    check_unchanged(s2)
    Image.open(target).save(folder / "test" / "cat" / "extra.png")
    with pytest.raises(ImageFolderError, match="changed since it was registered"):
        check_unchanged(s2)


def test_check_unchanged_when_folder_is_gone(tmp_path: Path) -> None:
    root = make_image_folder(tmp_path / "f", per_class=3, classes=2)
    s = scan_folder(root)
    root.rename(tmp_path / "moved")
    with pytest.raises(ImageFolderError, match="no longer exists"):
        check_unchanged(s)


# ------------------------------------------------------------------ bad input


@pytest.fixture
def small(tmp_path: Path) -> Path:
    return make_image_folder(tmp_path / "f", per_class=4, classes=3)


def test_root_missing_or_a_file(tmp_path: Path) -> None:
    with pytest.raises(ImageFolderError, match="does not exist"):
        scan_folder(tmp_path / "nope")
    (tmp_path / "file").write_text("x")
    with pytest.raises(ImageFolderError, match="is not a directory"):
        scan_folder(tmp_path / "file")


def test_train_missing_or_without_classes(tmp_path: Path) -> None:
    (tmp_path / "test" / "a").mkdir(parents=True)
    with pytest.raises(ImageFolderError, match="has no train/ folder"):
        scan_folder(tmp_path)
    (tmp_path / "train" / ".hidden").mkdir(parents=True)
    (tmp_path / "train" / "loose.png").write_bytes(b"x")
    with pytest.raises(ImageFolderError, match="train/ has no class folders"):
        scan_folder(tmp_path)


def test_single_class_is_refused(tmp_path: Path) -> None:
    root = make_image_folder(tmp_path / "f", per_class=4, classes=1)
    with pytest.raises(ImageFolderError, match=r"only one class folder \(airplane\).*at least 2"):
        scan_folder(root)


@pytest.mark.parametrize("split", ["train", "test"])
def test_class_folder_without_images(small: Path, split: str) -> None:
    empty = small / split / "bird"
    for f in empty.iterdir():
        f.unlink()
    (empty / "readme.txt").write_text("no images here")
    with pytest.raises(ImageFolderError, match=f"{split}/bird has no image files"):
        scan_folder(small)


def test_undecodable_image_is_named(small: Path) -> None:
    (small / "train" / "bird" / "0007.jpg").write_bytes(b"this is not a jpeg")
    with pytest.raises(ImageFolderError) as info:
        scan_folder(small)
    assert str(info.value) == ("train/bird/0007.jpg cannot be decoded (cannot identify image file): "
                               "remove or replace it")


def test_truncated_image_is_named(small: Path) -> None:
    good = (small / "test" / "automobile" / "0002.png").read_bytes()
    (small / "test" / "automobile" / "0002.png").write_bytes(good[: len(good) // 2])
    with pytest.raises(ImageFolderError, match=r"^test/automobile/0002\.png cannot be decoded \(.+\)"):
        scan_folder(small)


@pytest.mark.parametrize("split", ["valid", "test"])
def test_unknown_class_in_valid_or_test(small: Path, split: str) -> None:
    _noise_images(small / split / "zebra", 2, (32, 32))
    with pytest.raises(ImageFolderError, match=f"{split}/zebra is a class that train/ does not have"):
        scan_folder(small)


def test_bad_arguments(small: Path) -> None:
    with pytest.raises(ImageFolderError, match="image size 4 is outside 8..512"):
        scan_folder(small, image_size=4)
    with pytest.raises(ImageFolderError, match="image size 600 is outside 8..512"):
        scan_folder(small, image_size=600)
    with pytest.raises(ImageFolderError, match="channels must be 1 .* or 3"):
        scan_folder(small, channels=2)
    with pytest.raises(ImageFolderError, match="valid fraction"):
        scan_folder(small, valid_fraction=1.0)
    assert scan_folder(small, image_size=24).image_size == 24


# ------------------------------------------------------------------ channels and sizes


def test_grey_images_give_one_channel(tmp_path: Path) -> None:
    for c in ("a", "b"):
        _noise_images(tmp_path / "train" / c, 5, (20, 20), mode="L", seed=ord(c))
    s = scan_folder(tmp_path)
    assert s.channels == 1 and len(s.mean) == len(s.std) == 1
    assert s.image_size == 20
    assert abs(s.mean[0] - 0.5) < 0.02


def test_mixed_grey_and_colour(tmp_path: Path) -> None:
    _noise_images(tmp_path / "train" / "a", 3, (16, 16), mode="L")
    _noise_images(tmp_path / "train" / "b", 3, (16, 16), mode="RGB")
    with pytest.raises(ImageFolderError) as info:
        scan_folder(tmp_path)
    message = str(info.value)
    assert "train/a/000.png is greyscale (mode L)" in message
    assert "train/b/000.png is colour (mode RGB)" in message
    assert "pass --channels 1 or 3" in message
    assert scan_folder(tmp_path, channels=3).channels == 3
    grey = scan_folder(tmp_path, channels=1)
    assert grey.channels == 1 and len(grey.mean) == 1


def test_default_image_size(tmp_path: Path) -> None:
    for c in ("a", "b"):
        _noise_images(tmp_path / "small" / "train" / c, 3, (40, 40))
        _noise_images(tmp_path / "large" / "train" / c, 3, (100, 80))
    assert scan_folder(tmp_path / "small").image_size == 40
    assert scan_folder(tmp_path / "large").image_size == 64


# ------------------------------------------------------------------ allowed roots


def test_within_roots(tmp_path: Path) -> None:
    allowed, outside = tmp_path / "data", tmp_path / "private"
    (allowed / "lab").mkdir(parents=True)
    outside.mkdir()
    assert within_roots(allowed / "lab", [allowed]) == (allowed / "lab").resolve()
    assert within_roots(str(allowed), [tmp_path / "x", allowed]) == allowed.resolve()
    for escape in (outside, allowed / ".." / "private", allowed / "lab" / ".." / ".." / "private"):
        with pytest.raises(ImageFolderError, match="only reads datasets under: .*KNAS_DATA_DIR"):
            within_roots(escape, [allowed])
    (allowed / "link").symlink_to(outside)
    with pytest.raises(ImageFolderError, match=str(outside.resolve())):
        within_roots(allowed / "link", [allowed])
    (tmp_path / "sibling").symlink_to(allowed / "lab")  # a link from outside into a root is fine
    assert within_roots(tmp_path / "sibling", [allowed]) == (allowed / "lab").resolve()
    (tmp_path / "data2").mkdir()
    with pytest.raises(ImageFolderError):  # a common prefix is not containment
        within_roots(tmp_path / "data2", [allowed])
    with pytest.raises(ImageFolderError, match="no dataset folders are allowed.*KNAS_DATA_DIR"):
        within_roots(allowed, [])


# ------------------------------------------------------------------ torch side


def test_probe_equals_slicing_load(folder: Path) -> None:
    from scorer.data.image_folder import ImageFolderDataset

    ds = ImageFolderDataset("lab", scan_folder(folder))
    x, y = ds.load("train")
    assert x.shape == (180, 3, 32, 32) and x.dtype == torch.float32 and y.dtype == torch.int64
    for split, n, seed in (("train", 16, 0), ("train", 5, 3), ("valid", 20, 1)):
        xs, ys = ds.load(split) if split != "train" else (x, y)
        idx = torch.randperm(len(ys), generator=torch.Generator().manual_seed(seed))[:n]
        px, py = ds.probe(n, seed, split=split)
        assert torch.equal(px, xs[idx]) and torch.equal(py, ys[idx])
    with pytest.raises(ValueError, match="probe batch size 21 is not possible: the 'valid' split "
                                         "of 'lab' has 20 examples"):
        ds.probe(21, 0, split="valid")


def test_dataset_info_and_check(folder: Path) -> None:
    from scorer.data.base import DatasetNotFoundError
    from scorer.data.image_folder import ImageFolderDataset, preprocessing_spec

    s = scan_folder(folder)
    ds = ImageFolderDataset("lab", s)
    assert ds.info.num_classes == 10 and ds.info.in_shape == (3, 32, 32)
    assert ds.info.description == f"image folder {s.root}: 180 train / 20 valid / 200 test"
    assert ds.info.augment and 16 <= ds.info.batch_size <= 256
    assert ds.info.mean == tuple(s.mean) and ds.info.std == tuple(s.std)
    spec = preprocessing_spec(s)
    assert spec["decode"] == "PIL.Image.open(path).convert('RGB')" and spec["resize"] == [32, 32]
    assert [ds.has_split(split) for split in ("train", "valid", "test")] == [True] * 3
    ds.check(None)
    (folder / "test" / "cat" / "0000.png").unlink()
    with pytest.raises(ImageFolderError, match="changed"):
        ds.check(None)
    folder.rename(folder.parent / "gone")
    with pytest.raises(DatasetNotFoundError, match="does not exist"):
        ds.check(None)


@pytest.mark.parametrize("mode,size", [("RGB", (40, 30)), ("L", (13, 50)), ("RGB", (32, 32))])
def test_load_image_matches_torchvision_pipeline(tmp_path: Path, mode: str, size) -> None:
    from torchvision.transforms import v2

    from scorer.data.image_folder import load_image

    _noise_images(tmp_path, 1, size, mode="RGB", seed=5)  # saved as RGB; converted on load
    path = tmp_path / "000.png"
    channels = 3 if mode == "RGB" else 1
    mean, std = [0.4, 0.5, 0.6][:channels], [0.2, 0.25, 0.3][:channels]
    got = load_image(path, 24, channels, mean, std)

    resize = v2.Compose([v2.PILToTensor(), v2.Resize((24, 24), antialias=True)])
    pipeline = v2.Compose([resize, v2.ToDtype(torch.float32, scale=True), v2.Normalize(mean, std)])
    image = Image.open(path).convert(mode)
    expected = pipeline(image)
    assert got.shape == (channels, 24, 24) and got.dtype == torch.float32
    torch.testing.assert_close(got, expected.as_subclass(torch.Tensor), rtol=0, atol=1e-5)
    # and exactly the same uint8 pixels before scaling
    m, s = torch.tensor(mean).view(-1, 1, 1), torch.tensor(std).view(-1, 1, 1)
    assert torch.equal(((got * s + m) * 255).round().to(torch.uint8),
                       resize(image).as_subclass(torch.Tensor))


def test_folder_split_in_dataloader_workers(tmp_path: Path) -> None:
    from torch.utils.data import DataLoader

    from scorer.data.image_folder import ImageFolderDataset

    root = make_image_folder(tmp_path / "f", per_class=6, classes=3)
    ds = ImageFolderDataset("lab", scan_folder(root))
    data = ds.stream("test")
    assert torch.equal(data.labels, torch.tensor([0] * 6 + [1] * 6 + [2] * 6))
    batches = list(DataLoader(data, batch_size=5, num_workers=2))
    x = torch.cat([b[0] for b in batches])
    y = torch.cat([b[1] for b in batches])
    full_x, full_y = ds.load("test")
    assert torch.equal(x, full_x) and torch.equal(y, full_y)


# ------------------------------------------------------------------ torch-free scanner


def test_folder_scan_source_imports_no_torch() -> None:
    """The module itself (loaded on its own) pulls in no torch/torchvision."""
    code = (
        "import importlib.util, sys;"
        f"spec = importlib.util.spec_from_file_location('fs', {str(REPO / 'scorer/folders.py')!r});"
        "m = importlib.util.module_from_spec(spec); sys.modules['fs'] = m; spec.loader.exec_module(m);"
        "assert 'torch' not in sys.modules and 'torchvision' not in sys.modules, 'torch imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


def test_import_folder_scan_does_not_import_torch() -> None:
    """What the API does: `import scorer.folders` (package __init__ included)."""
    code = ("import sys, scorer.folders;"
            "assert 'torch' not in sys.modules, 'torch imported'")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
