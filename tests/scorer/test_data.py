"""Dataset registry: embedded sets load, probe batches are reproducible, file formats parse."""
from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from scorer.data import (
    SPLITS,
    DatasetNotFoundError,
    clear_cache,
    dataset_info,
    get_dataset,
    list_datasets,
    load_split,
    probe_batch,
)
from scorer.registry import UnknownNameError
from tests.support.paths import SHARED_DATA
from tests.support.require import require_shared

EMBEDDED = [n for n in list_datasets() if dataset_info(n).embedded]


@pytest.fixture(autouse=True)
def _fresh_cache(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("KNAS_DATA_DIR", raising=False)
    clear_cache()
    yield
    clear_cache()


def _check_split(name: str, x: torch.Tensor, y: torch.Tensor) -> None:
    info = dataset_info(name)
    assert x.dtype == torch.float32 and y.dtype == torch.int64
    assert x.ndim == 4 and tuple(x.shape[1:]) == info.in_shape
    assert y.shape == (x.shape[0],) and x.shape[0] > 0
    assert int(y.min()) >= 0 and int(y.max()) < info.num_classes
    assert torch.isfinite(x).all()


def test_registry_lists_all_datasets() -> None:
    names = set(list_datasets())
    expected = {"cifar10", "cifar100", "imagenet16-120", "synthetic", "digits", "cifar10-sample"}
    assert expected <= names
    assert get_dataset("npz") is get_dataset("cifar10-sample")
    assert set(EMBEDDED) >= {"synthetic", "digits"}


def test_unknown_dataset_lists_names() -> None:
    with pytest.raises(UnknownNameError) as err:
        get_dataset("mnist-nope")
    assert "synthetic" in str(err.value) and "cifar10" in str(err.value)
    with pytest.raises(UnknownNameError):
        probe_batch("mnist-nope", 4, 0)


def test_unknown_split() -> None:
    with pytest.raises(ValueError, match="split"):
        load_split("synthetic", "holdout")


@pytest.mark.parametrize("name", EMBEDDED)
def test_embedded_splits(name: str) -> None:
    sizes = {}
    for split in SPLITS:
        x, y = load_split(name, split)
        _check_split(name, x, y)
        sizes[split] = len(y)
        assert len(torch.unique(y)) == dataset_info(name).num_classes
    assert sizes["train"] > sizes["valid"]


def test_embedded_sizes() -> None:
    assert [len(load_split("synthetic", s)[1]) for s in SPLITS] == [2000, 500, 500]
    assert [len(load_split("digits", s)[1]) for s in SPLITS] == [1297, 250, 250]


def test_digits_splits_disjoint_and_normalised() -> None:
    from scorer.data.digits import MEAN, STD, Digits

    raw, _ = Digits.raw()
    assert raw.mean().item() == pytest.approx(MEAN, abs=1e-3)
    assert raw.std().item() == pytest.approx(STD, abs=1e-3)
    rows = [load_split("digits", s)[0].flatten(1) for s in SPLITS]
    allx = torch.cat(rows)
    assert len(allx) == 1797
    assert allx.mean().abs() < 0.01 and (allx.std() - 1).abs() < 0.01
    assert len(torch.unique(allx, dim=0)) == len(torch.unique(raw.flatten(1), dim=0))


@pytest.mark.parametrize("name", EMBEDDED)
def test_probe_batch_deterministic(name: str) -> None:
    x1, y1 = probe_batch(name, 32, seed=7)
    clear_cache()  # a fresh load must give the same batch too
    x2, y2 = probe_batch(name, 32, seed=7)
    x3, _ = probe_batch(name, 32, seed=8)
    assert x1.shape[0] == 32 and torch.equal(x1, x2) and torch.equal(y1, y2)
    assert not torch.equal(x1, x3)
    _check_split(name, x1, y1)


def test_probe_batch_without_replacement_and_too_large() -> None:
    x, _ = probe_batch("synthetic", 500, seed=0, split="valid")
    assert len(torch.unique(x.flatten(1), dim=0)) == 500
    with pytest.raises(ValueError, match=r"501.*500|500.*501"):
        probe_batch("synthetic", 501, seed=0, split="valid")


def test_load_split_is_cached() -> None:
    a = load_split("digits", "train")
    b = load_split("digits", "train")
    assert a[0] is b[0]


def test_synthetic_is_learnable() -> None:
    tx, ty = load_split("synthetic", "train")
    sx, sy = load_split("synthetic", "test")
    means = torch.stack([tx[ty == c].mean(0) for c in range(10)]).flatten(1)
    pred = torch.cdist(sx.flatten(1), means).argmin(1)
    assert (pred == sy).float().mean().item() > 0.5


# ---- file formats, written as tiny fakes -------------------------------------------------


def _dump(path: Path, obj: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as f:
        pickle.dump(obj, f)


def _planar(n: int, pixels: int, rng: np.random.Generator) -> np.ndarray:
    return rng.integers(0, 256, size=(n, 3 * pixels), dtype=np.uint8)


def test_cifar10_fake_files(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    root = tmp_path / "cifar-10-batches-py"
    train_labels = []
    for i in range(1, 6):
        labels = [int(v) for v in rng.integers(0, 10, 20)]
        train_labels += labels
        _dump(root / f"data_batch_{i}", {"data": _planar(20, 1024, rng), "labels": labels})
    test_data = _planar(20, 1024, rng)
    _dump(root / "test_batch", {"data": test_data, "labels": list(range(10)) * 2})

    x_tr, y_tr = load_split("cifar10", "train", tmp_path)
    x_va, y_va = load_split("cifar10", "valid", tmp_path)
    x_te, y_te = load_split("cifar10", "test", tmp_path)
    for x, y in ((x_tr, y_tr), (x_va, y_va), (x_te, y_te)):
        _check_split("cifar10", x, y)
    assert (len(y_tr), len(y_va), len(y_te)) == (90, 10, 20)
    assert y_tr.tolist() + y_va.tolist() == train_labels  # fixed order: valid = the last tenth
    # channel-planar decoding and normalisation of the first test pixel
    info = dataset_info("cifar10")
    expect = [(test_data[0, c * 1024] / 255 - info.mean[c]) / info.std[c] for c in range(3)]
    assert x_te[0, :, 0, 0].tolist() == pytest.approx(expect, abs=1e-5)
    first, again = probe_batch("cifar10", 8, 1, tmp_path), probe_batch("cifar10", 8, 1, tmp_path)
    assert torch.equal(first[0], again[0])


def test_cifar100_fake_files(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    root = tmp_path / "cifar-100-python"
    fine = [int(v) for v in rng.integers(0, 100, 40)]
    _dump(
        root / "train",
        {"data": _planar(40, 1024, rng), "fine_labels": fine, "coarse_labels": [0] * 40},
    )
    _dump(root / "test", {"data": _planar(20, 1024, rng), "fine_labels": [99] * 20})
    x, y = load_split("cifar100", "train", tmp_path)
    _check_split("cifar100", x, y)
    assert y.tolist() == fine[:36]
    assert load_split("cifar100", "valid", tmp_path)[1].tolist() == fine[36:]
    assert load_split("cifar100", "test", tmp_path)[1].tolist() == [99] * 20


def test_imagenet16_fake_files(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    root = tmp_path / "ImageNet16"
    kept = []
    for i in range(1, 11):
        labels = [1, 120, 121, 1000] + [int(v) for v in rng.integers(1, 1001, 16)]
        kept += [v - 1 for v in labels if v <= 120]
        _dump(root / f"train_data_batch_{i}", {"data": _planar(20, 256, rng), "labels": labels})
    val_labels = [int(v) for v in rng.integers(1, 121, 30)] + [500] * 10
    _dump(root / "val_data", {"data": _planar(40, 256, rng), "labels": val_labels})

    x, y = load_split("imagenet16-120", "train", tmp_path)
    _check_split("imagenet16-120", x, y)
    assert y.tolist() == kept and 0 in kept and 119 in kept
    _, y_va = load_split("imagenet16-120", "valid", tmp_path)
    _, y_te = load_split("imagenet16-120", "test", tmp_path)
    assert y_va.tolist() + y_te.tolist() == [v - 1 for v in val_labels[:30]]
    assert (len(y_va), len(y_te)) == (15, 15)


@pytest.mark.parametrize("name", ["cifar10", "cifar100", "imagenet16-120", "cifar10-sample"])
def test_missing_files_raise_with_path(name: str, tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(DatasetNotFoundError) as err:
        load_split(name, "train", missing)
    msg = str(err.value)
    assert str(missing) in msg and "KNAS_DATA_DIR" in msg
    with pytest.raises(DatasetNotFoundError, match="KNAS_DATA_DIR"):
        get_dataset(name).check(None)


def test_environment_is_not_read_by_the_scorer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings are the only reader of KNAS_* variables; the scorer takes data_dir as an argument."""
    monkeypatch.setenv("KNAS_DATA_DIR", str(tmp_path / "envdir"))
    with pytest.raises(DatasetNotFoundError, match="not set"):
        load_split("cifar10", "test")


# ---- the real CIFAR-10 sample from the shared data folder ---------------------------------


@pytest.fixture
def shared_data() -> Path:
    require_shared("cifar10-sample")
    return SHARED_DATA


def test_cifar10_sample_real_files(shared_data: Path) -> None:
    sizes = {}
    for split in SPLITS:
        x, y = load_split("cifar10-sample", split, shared_data)
        _check_split("cifar10-sample", x, y)
        sizes[split] = len(y)
        assert len(torch.unique(y)) == 10  # every class present in every split
        assert x.mean().abs() < 0.2 and (x.std() - 1).abs() < 0.2  # cifar10 normalisation
    assert sizes == {"train": 900, "valid": 100, "test": 1000}
    # pointing data_dir straight at the folder works too
    direct = load_split("npz", "test", shared_data / "cifar10-sample")
    assert torch.equal(direct[0], load_split("cifar10-sample", "test", shared_data)[0])
    xa, _ = probe_batch("cifar10-sample", 16, 3, shared_data)
    xb, _ = probe_batch("cifar10-sample", 16, 3, shared_data)
    assert torch.equal(xa, xb)
