"""The torch-free catalog must mirror the registries exactly."""
from __future__ import annotations

import subprocess
import sys

import pytest

from scorer import catalog
from scorer.data import DATASETS, DatasetNotFoundError
from scorer.proxies import PROXIES


def test_proxies_match_the_registry():
    assert catalog.PROXIES == {name: PROXIES.get(name).description for name in PROXIES.names()}
    assert catalog.PROXY_ALIASES == PROXIES.aliases()


def test_datasets_match_the_registry():
    assert set(catalog.DATASETS) == set(DATASETS.names())
    for name, entry in catalog.DATASETS.items():
        info = DATASETS.get(name).info
        assert (entry.num_classes, tuple(entry.in_shape), entry.embedded) == \
            (info.num_classes, tuple(info.in_shape), info.embedded), name
    assert {a: e.name for e in catalog.DATASETS.values() for a in e.aliases} == DATASETS.aliases()


@pytest.mark.parametrize("name", sorted(n for n, e in catalog.DATASETS.items() if not e.embedded))
def test_presence_agrees_with_the_loader(name, tmp_path):
    entry = catalog.DATASETS[name]
    assert not entry.present(tmp_path) and not entry.present(None)
    with pytest.raises(DatasetNotFoundError):
        DATASETS.get(name).check(tmp_path)


def test_catalog_and_spec_validation_never_import_torch():
    code = ("import sys, scorer.catalog, scorer.spaces, knas.jobspec, worker.jobs, models.queries; "
            "assert 'torch' not in sys.modules, 'torch was imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_unknown_names_list_the_choices():
    with pytest.raises(ValueError, match="mgm"):
        catalog.proxy_name("nope")
    with pytest.raises(ValueError, match="digits"):
        catalog.dataset_entry("mnist")
    assert catalog.proxy_name("knas") == "mgm" and catalog.dataset_entry("npz").name == "cifar10-sample"
