"""Torch-free facts about the registered proxies and datasets.

The API must answer "which proxies / datasets exist, is this dataset on the
server" without importing PyTorch, which the registries need. This table
mirrors them; a test fails when the two drift apart.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class DatasetEntry:
    name: str
    num_classes: int
    in_shape: tuple[int, int, int]
    embedded: bool
    files: tuple[str, ...] = ()  # paths under the data dir that must all exist
    aliases: tuple[str, ...] = ()

    def present(self, data_dir: Path | None) -> bool:
        if self.embedded:
            return True
        if data_dir is None:
            return False
        return all((Path(data_dir) / f).exists() for f in self.files)


PROXIES: dict[str, str] = {
    "ensemble": "rank aggregation (sum of log-ranks) of mgm, zico, expressivity, progressivity, trainability, flops",
    "expressivity": "sum over blocks of the spectral entropy of the feature covariance (AZ-NAS)",
    "flops": "multiply-accumulates of one forward pass of one sample",
    "grad_norm": "sum of the L2 norms of conv/linear weight gradients",
    "jacov": "eigen-spectrum of the correlation of input Jacobians (jacov)",
    "mgm": "mean of the Gram matrix of per-sample gradients (KNAS)",
    "mgm-offdiag": "Gram-matrix mean over pairs i != j only (unbiased KNAS)",
    "naswot": "log|det| of the kernel of ReLU activation codes (NASWOT)",
    "progressivity": "smallest block-to-block gain in feature spectral entropy (AZ-NAS)",
    "params": "number of trainable parameters",
    "snip": "sum of |w * dL/dw| over conv/linear weights (SNIP saliency)",
    "synflow": "synaptic flow: sum |w * dR/dw| of the |weights|, BN-free net on an all-ones input",
    "trainability": "closeness to 1 of each block's Jacobian spectral norm, averaged (AZ-NAS)",
    "zico": "sum over layers of log(sum mean|g| / std(g)) across mini-batches (ZiCo)",
}
PROXY_ALIASES: dict[str, str] = {
    "knas": "mgm", "macs": "flops", "jacob_cov": "jacov", "grad-norm": "grad_norm", "nwot": "naswot", "param_count": "params",
}

_CIFAR10 = tuple(f"cifar-10-batches-py/{n}" for n in [*(f"data_batch_{i}" for i in range(1, 6)), "test_batch"])
_IN16 = tuple(f"ImageNet16/{n}" for n in [*(f"train_data_batch_{i}" for i in range(1, 11)), "val_data"])

DATASETS: dict[str, DatasetEntry] = {e.name: e for e in (
    DatasetEntry("cifar10", 10, (3, 32, 32), False, _CIFAR10, ("cifar-10",)),
    DatasetEntry("cifar100", 100, (3, 32, 32), False, ("cifar-100-python/train", "cifar-100-python/test"),
                 ("cifar-100",)),
    DatasetEntry("cifar10-sample", 10, (3, 32, 32), False, ("cifar10-sample",), ("npz",)),
    DatasetEntry("digits", 10, (1, 16, 16), True),
    DatasetEntry("imagenet16-120", 120, (3, 16, 16), False, _IN16, ("imagenet16",)),
    DatasetEntry("synthetic", 10, (3, 32, 32), True),
)}
BENCHMARK_DATASETS = ("cifar10", "cifar100", "imagenet16-120")


# The keys of `proxy.options` each proxy reads. No proxy reads any today, so every key is refused (a 422)
# rather than stored and echoed as if it changed something.
PROXY_OPTIONS: dict[str, frozenset[str]] = {}


def proxy_options(name: str) -> frozenset[str]:
    """The option keys proxy `name` (canonical) accepts in a job's `proxy.options`."""
    return PROXY_OPTIONS.get(name, frozenset())


def proxy_name(name: str) -> str:
    """Canonical proxy name, or ValueError listing what exists."""
    name = PROXY_ALIASES.get(name, name)
    if name not in PROXIES:
        raise ValueError(f"unknown proxy {name!r}; choose one of: {', '.join(sorted(PROXIES))}")
    return name


def dataset_entry(name: str) -> DatasetEntry:
    for entry in DATASETS.values():
        if name == entry.name or name in entry.aliases:
            return entry
    raise ValueError(f"unknown dataset {name!r}; choose one of: {', '.join(sorted(DATASETS))}")
