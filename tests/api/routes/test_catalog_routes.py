"""/v1/spaces, /v1/proxies, /v1/datasets list exactly what the (torch-free) registries hold."""
from __future__ import annotations

from scorer.data import DATASETS
from scorer.proxies import PROXIES
from scorer.spaces import SPACES


def test_spaces_match_the_registry(api):
    spaces = {s["name"]: s for s in api.spaces()}
    assert set(spaces) == set(SPACES.names())
    assert spaces["nats-tss"]["size"] == 15625 and spaces["nats-sss"]["size"] == 32768
    assert "nb201" in spaces["nats-tss"]["aliases"]
    for name, entry in spaces.items():
        assert SPACES.get(name).validate(entry["example"])


def test_proxies_match_the_registry(api):
    proxies = {p["name"]: p for p in api.proxies()}
    assert set(proxies) == set(PROXIES.names())
    assert "KNAS" in proxies["mgm"]["description"] and "knas" in proxies["mgm"]["aliases"]


def test_datasets_say_what_is_present_on_this_server(api):
    datasets = {d["name"]: d for d in api.datasets()}
    # the registry's, plug-ins included (the test-only "tiny" one is registered in this process)
    assert set(datasets) == set(DATASETS.names()) and datasets["tiny"]["present"]
    assert datasets["digits"]["present"] and datasets["digits"]["embedded"]
    assert datasets["synthetic"]["present"]
    assert not datasets["cifar10"]["present"]  # the test server has no KNAS_DATA_DIR
    assert datasets["cifar10"]["benchmark"] and not datasets["digits"]["benchmark"]
    assert datasets["digits"]["in_shape"] == [1, 16, 16]
