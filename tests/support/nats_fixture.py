"""Write a tiny NATS-Bench directory in the real fast-mode on-disk format.

Tests of benchmark mode can't ship the multi-GB release, so this writes what
nats_bench 1.8 actually reads (see its api_utils.py / api_topology.py, and
AutoDL-Projects' tss-collect.py which produced the release):

- `<dir>/meta.pickle.pbz2`: a bz2-compressed pickle of
  {"meta_archs": [arch strings in benchmark order], "total_archs": n,
   "arch2infos": None, "evaluated_indexes": set()};
- `<dir>/{index:06d}.pickle.pbz2`: {hp: ArchResults.state_dict()} for one arch,
  where a state dict is plain dicts/lists/floats (no classes are pickled).

`meta_archs` lists the whole space in the benchmark's own order, so indices
are the real ones; only the archs in `records` get a per-arch file (others
behave like a benchmark with missing files).
"""
from __future__ import annotations

import bz2
import itertools
import pickle
import random
from collections import OrderedDict
from pathlib import Path
from typing import Any, Iterable, Union

TSS_DIRNAME = "NATS-tss-v1_0-3ffb9-simple"
SSS_DIRNAME = "NATS-sss-v1_0-50262-simple"
TSS_OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
TSS_ARCH_0 = "|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_1x1~0|skip_connect~1|skip_connect~2|"
SSS_CHANNELS = (8, 16, 24, 32, 40, 48, 56, 64)

# trial seeds per schedule, as in the release (only the count matters to the API)
TSS_SEEDS = {"12": [111], "200": [777, 888, 999]}
SSS_SEEDS = {"01": [777], "12": [777], "90": [777, 888, 999]}
HP_EPOCHS = {"01": 1, "12": 12, "90": 90, "200": 200}
OUR_TO_BENCH = {"cifar10": "cifar10", "cifar100": "cifar100", "imagenet16-120": "ImageNet16-120"}
NUM_CLASSES = {"cifar10-valid": 10, "cifar10": 10, "cifar100": 100, "ImageNet16-120": 120}

Number = Union[float, int]


def tss_archs() -> list[str]:
    """All 15,625 topology archs in NATS-Bench order (enumerate, then random.seed(88) shuffle)."""
    archs = []
    for ops in itertools.product(TSS_OPS, repeat=6):
        nodes = [[f"{ops[0]}~0"], [f"{ops[1]}~0", f"{ops[2]}~1"], [f"{ops[3]}~0", f"{ops[4]}~1", f"{ops[5]}~2"]]
        archs.append("+".join("|" + "|".join(node) + "|" for node in nodes))
    random.Random(88).shuffle(archs)
    assert archs[0] == TSS_ARCH_0, "benchmark order changed?"
    return archs


def sss_archs() -> list[str]:
    """All 32,768 size archs in NATS-Bench order ("8:8:8:8:8" first)."""
    return [":".join(map(str, c)) for c in itertools.product(SSS_CHANNELS, repeat=5)]


def _dump(obj: Any, path: Path) -> None:
    with bz2.BZ2File(path, "wb") as handle:
        pickle.dump(obj, handle, protocol=4)


def _per_seed(value: Union[Number, Iterable[Number]], n: int) -> list[float]:
    if isinstance(value, (int, float)):
        return [float(value)] * n
    values = [float(v) for v in value]
    if len(values) != n:
        raise ValueError(f"expected {n} per-seed values, got {len(values)}")
    return values


def _curve(final: float, epochs: int) -> dict[int, float]:
    """A rising per-epoch curve that ends exactly at `final`."""
    return {e: final * (e + 1) / epochs if e < epochs - 1 else final for e in range(epochs)}


def _results_count(
    name: str,
    arch: str,
    seed: int,
    epochs: int,
    evals: dict[str, float],
    train_seconds: Union[float, None],
    arch_config: dict,
) -> dict:
    """ResultsCount.state_dict() of one trial."""
    per_epoch = None if train_seconds is None else float(train_seconds) / epochs
    eval_acc1es, eval_losses, eval_times = {}, {}, {}
    for set_name, acc in evals.items():
        for e, a in _curve(acc, epochs).items():
            eval_acc1es[f"{set_name}@{e}"] = a
            eval_losses[f"{set_name}@{e}"] = 1.0 - a / 100.0
            eval_times[f"{set_name}@{e}"] = 0.5
    train_acc = _curve(99.0, epochs)
    return {
        "name": name,
        "net_state_dict": None,  # the "-simple" release drops the weights
        "train_acc1es": train_acc,
        "train_acc5es": dict(train_acc),
        "train_losses": {e: 1.0 - a / 100.0 for e, a in train_acc.items()},
        "train_times": None if per_epoch is None else {e: per_epoch for e in range(epochs)},
        "arch_config": arch_config,
        "params": 0.5,
        "flop": 50.0,
        "seed": seed,
        "epochs": epochs,
        "latency": [0.01],
        "eval_names": list(evals),
        "eval_acc1es": eval_acc1es,
        "eval_times": eval_times,
        "eval_losses": eval_losses,
    }


def _arch_results(index: int, arch: str, space: str, hp: str, seeds: list[int], datasets: dict) -> dict:
    """ArchResults.state_dict() of one arch under one schedule."""
    all_results, dataset_seed = {}, {}
    epochs = HP_EPOCHS[hp]

    def add(bench_ds: str, per_seed_evals: list[dict[str, float]], seconds: Union[float, None]) -> None:
        classes = NUM_CLASSES[bench_ds]
        if space == "tss":
            config = {"name": "infer.tiny", "channel": 16, "num_cells": 5, "arch_str": arch, "class_num": classes}
        else:
            config = {"name": "infer.shape.tiny", "channels": arch, "genotype": "", "class_num": classes}
        dataset_seed[bench_ds] = list(seeds)
        for seed, evals in zip(seeds, per_seed_evals):
            all_results[(bench_ds, seed)] = _results_count(bench_ds, arch, seed, epochs, evals, seconds, config)

    n = len(seeds)
    for ours, entry in datasets.items():
        if ours not in OUR_TO_BENCH:
            raise ValueError(f"unknown dataset {ours!r}; use {sorted(OUR_TO_BENCH)}")
        valid, test = _per_seed(entry["valid"], n), _per_seed(entry["test"], n)
        seconds = entry.get("train_seconds")
        if ours == "cifar10":
            # cifar10-valid: trained on train, x-valid = held-out half; its ori-test is a decoy
            # here (the real one exists too) so a test catches reading test acc from the wrong entry.
            add("cifar10-valid", [{"x-valid": v, "ori-test": t - 1.0} for v, t in zip(valid, test)], seconds)
            add("cifar10", [{"ori-test": t} for t in test], seconds)
        else:
            add(
                OUR_TO_BENCH[ours],
                [{"x-valid": v, "x-test": t, "ori-test": (v + t) / 2} for v, t in zip(valid, test)],
                seconds,
            )
    return {
        "arch_index": index,
        "arch_str": arch,
        "all_results": all_results,
        "dataset_seed": dataset_seed,
        "clear_net_done": True,
    }


def _by_hp(record: dict, default_hp: str, hps: Iterable[str]) -> dict[str, dict]:
    """A record is either {dataset: entry} (for `default_hp`) or {hp: {dataset: entry}}."""
    if record and all(key in hps for key in record):
        return record
    return {default_hp: record}


def write_benchmark(root: Path, space: str, records: dict[str, dict]) -> Path:
    """Write a fast-mode benchmark for `space` ("tss" or "sss") under `root`; return its directory."""
    if space == "tss":
        dirname, archs, seeds = TSS_DIRNAME, tss_archs(), TSS_SEEDS
    elif space == "sss":
        dirname, archs, seeds = SSS_DIRNAME, sss_archs(), SSS_SEEDS
    else:
        raise ValueError(f"space must be 'tss' or 'sss', got {space!r}")
    index_of = {arch: i for i, arch in enumerate(archs)}
    directory = Path(root) / dirname
    directory.mkdir(parents=True, exist_ok=True)
    _dump(
        {"meta_archs": archs, "total_archs": len(archs), "arch2infos": None, "evaluated_indexes": set()},
        directory / "meta.pickle.pbz2",
    )
    for arch, record in records.items():
        if arch not in index_of:
            raise ValueError(f"{arch!r} is not a {space} arch string in benchmark form")
        index = index_of[arch]
        per_hp = _by_hp(record, "12", seeds)
        data = OrderedDict(
            (hp, _arch_results(index, arch, space, hp, seeds[hp], datasets)) for hp, datasets in per_hp.items()
        )
        _dump(data, directory / f"{index:06d}.pickle.pbz2")
    return directory


def write_tss_benchmark(root: Path, records: dict[str, dict]) -> Path:
    """Write a topology-space benchmark under `root`; return `root/NATS-tss-v1_0-3ffb9-simple`.

    `records` maps an arch string to {our dataset name: {"valid": acc, "test": acc,
    "train_seconds": s (optional)}} for hp "12", or to {hp: {dataset: ...}} for
    several schedules ("12", "200"). Accuracies are percents; a list instead of a
    number gives one value per seed of that schedule (the API averages them).
    """
    return write_benchmark(root, "tss", records)


def write_sss_benchmark(root: Path, records: dict[str, dict]) -> Path:
    """Like `write_tss_benchmark` for the size space (hp "01", "12", "90").

    nats_bench's size API needs `train_seconds` (it divides by it).
    """
    return write_benchmark(root, "sss", records)
