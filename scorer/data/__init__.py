"""Datasets: named plug-ins that load whole splits as normalised tensors.

`DATASETS` (scorer/data/registry.py) declares every built-in once: its metadata and a lazy
reference to its loader. Importing this package does not import torch: listing, aliases and
metadata (`DATASETS.info(name)`) are what the API and spec validation need. The torch half,
`load_split` and `probe_batch` (scorer/data/loading.py), is resolved lazily on first use, as
`scorer/__init__.py` does.

File-based datasets look under `data_dir`, which callers take from settings
(KNAS_DATA_DIR); the scorer itself never reads the environment. Nothing is
ever downloaded.
"""
from __future__ import annotations

from ..registry import UnknownNameError, lazy_exports
from .base import (
    DATA_DIR_ENV,
    SPLITS,
    Dataset,
    DatasetInfo,
    DatasetNotFoundError,
    check_split,
    not_found,
    resolve_data_dir,
)
from .registry import DATASETS, benchmark_datasets

__getattr__ = lazy_exports(__name__, dict.fromkeys(("load_split", "probe_batch", "clear_cache", "normalise"),
                                                  f"{__name__}.loading"))


def get_dataset(name: str) -> Dataset:
    """The loader of `name` (or an alias), imported on first use; UnknownNameError lists the names."""
    return DATASETS.get(name)


def dataset_info(name: str) -> DatasetInfo:
    """The metadata of `name` (or an alias), without importing its loader."""
    return DATASETS.info(name)


def list_datasets() -> list[str]:
    return DATASETS.names()


__all__ = [
    "DATASETS",
    "DATA_DIR_ENV",
    "SPLITS",
    "Dataset",
    "DatasetInfo",
    "DatasetNotFoundError",
    "UnknownNameError",
    "benchmark_datasets",
    "check_split",
    "clear_cache",
    "dataset_info",
    "get_dataset",
    "list_datasets",
    "load_split",
    "not_found",
    "probe_batch",
    "resolve_data_dir",
]
