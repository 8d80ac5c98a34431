"""Shared by the ranking benchmarks: the NAS-Bench-201 ground truth and a score cache.

The ground truth is read from ../shared/data/nb201 (or --data-dir); knas never ships it.
Scores are cached per (arch index, proxy, probe size, seed) in a JSON file, so a second run,
or bench/search.py after bench/ranking.py, does not score an arch twice.
"""
from __future__ import annotations

import csv
import json
import os
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = Path(os.environ.get("KNAS_SHARED_DATA", REPO.parent / "shared" / "data"))
DEFAULT_CACHE = REPO / ".artifacts" / "bench-scores.json"


def test_accuracy(data_dir: Path, column: str = "CIFAR10TestAccuracy200Epochs") -> list[float]:
    """200-epoch test accuracy of every tss arch, by benchmark index."""
    with open(data_dir / "nb201" / "nats_bench.csv", newline="") as f:
        return [float(row[column]) for row in csv.DictReader(f)]


def short_valid_accuracy(data_dir: Path, column: str = "cifar10-val") -> list[float]:
    """12-epoch validation accuracy (the cheap signal KNAS picks its winner with), by index."""
    with open(data_dir / "nb201" / "nb201_minibench_accs.csv", newline="") as f:
        rows = sorted(csv.DictReader(f), key=lambda r: int(r["arch"]))
    return [float(r[column]) for r in rows]


class ScoreCache:
    """arch index -> {proxy: score, proxy + ':s': seconds} for one (probe, seed, dataset)."""

    def __init__(self, path: Path, probe: int, seed: int, dataset: str) -> None:
        self.path, self.key = path, f"{dataset}/probe{probe}/seed{seed}"
        self._all = json.loads(path.read_text()) if path.exists() else {}
        self.entries: dict[str, dict[str, float]] = self._all.setdefault(self.key, {})
        self._dirty, self._last_save = False, time.monotonic()

    def get(self, index: int, proxy: str) -> float | None:
        return self.entries.get(str(index), {}).get(proxy)

    def seconds(self, index: int, proxy: str) -> float | None:
        return self.entries.get(str(index), {}).get(proxy + ":s")

    def put(self, index: int, proxy: str, score: float, seconds: float) -> None:
        entry = self.entries.setdefault(str(index), {})
        entry[proxy], entry[proxy + ":s"] = score, seconds
        self._dirty = True
        if time.monotonic() - self._last_save > 30:
            self.save()

    def alone_seconds(self, proxy: str) -> float | None:
        """Seconds per arch of `proxy` scored on its own (no passes shared), if measured."""
        return self._all.get(self.key + "/alone", {}).get(proxy)

    def put_alone(self, proxy: str, seconds: float) -> None:
        self._all.setdefault(self.key + "/alone", {})[proxy] = seconds
        self._dirty = True

    def save(self) -> None:
        if self._dirty:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(json.dumps(self._all))
            tmp.replace(self.path)
            self._dirty, self._last_save = False, time.monotonic()


def score_archs(indices, proxies, cache: ScoreCache, probe_inputs, probe_targets, seed: int,
                progress=None, jobs: int = 1) -> None:
    """Fill the cache with every (arch, per-net proxy) score still missing.

    `jobs` > 1 scores archs in that many processes of one torch thread each: on small CPU
    networks that beats one process with several threads, and scores do not depend on it.
    """
    todo = [(i, [p for p in proxies if cache.get(i, p) is None]) for i in indices]
    todo = [(i, missing) for i, missing in todo if missing]
    done = len(indices) - len(todo)
    if jobs > 1 and len(todo) > 1:
        import multiprocessing

        with multiprocessing.get_context("spawn").Pool(
                jobs, initializer=_init_worker, initargs=(probe_inputs, probe_targets, seed)) as pool:
            for index, scores in pool.imap_unordered(_score_one, todo):
                done = _store(cache, index, scores, done, len(indices), progress)
    else:
        _init_worker(probe_inputs, probe_targets, seed, threads=None)
        for item in todo:
            done = _store(cache, *_score_one(item), done, len(indices), progress)
    cache.save()


def time_alone(indices, names, cache: ScoreCache, probe_inputs, probe_targets, seed: int, jobs: int = 1) -> None:
    """Seconds per arch of each proxy (or aggregate, as its components) scored on its own.

    Scored together, proxies share passes and a proxy's own seconds say little about what a job
    using only it pays; this measures that on a few archs and caches it.
    """
    todo = [(i, name) for name in names if cache.alone_seconds(name) is None for i in indices]
    if not todo:
        return
    if jobs > 1 and len(todo) > 1:
        import multiprocessing

        with multiprocessing.get_context("spawn").Pool(
                jobs, initializer=_init_worker, initargs=(probe_inputs, probe_targets, seed)) as pool:
            timings = pool.map(_time_one, todo)
    else:
        _init_worker(probe_inputs, probe_targets, seed, threads=None)
        timings = [_time_one(item) for item in todo]
    for name in {name for _, name in todo}:
        seconds = [t for (_, n), t in zip(todo, timings) if n == name]
        cache.put_alone(name, sum(seconds) / len(seconds))
    cache.save()


_probe: dict = {}


def _init_worker(inputs, targets, seed: int, threads: int | None = 1) -> None:
    if threads:
        import torch

        torch.set_num_threads(threads)
    _probe.update(inputs=inputs, targets=targets, seed=seed)


def _score_one(item) -> tuple[int, dict[str, tuple[float, float]]]:
    """All missing proxies of one arch in one call, so they share its net and probe passes."""
    from scorer.proxies import get_proxy
    from scorer.scoring import score_parts
    from scorer.seeding import candidate_seed
    from scorer.spaces import get_space

    index, proxies = item
    space = get_space("nats-tss")
    arch = space.arch(index)
    result = score_parts(space, arch, proxies, _probe["inputs"], _probe["targets"],
                         candidate_seed(_probe["seed"], arch), num_classes=10)
    return index, {p: (result.scores[p], result.part_seconds[p]) for p in (get_proxy(n).name for n in proxies)}


def _time_one(item) -> float:
    from scorer.proxies import get_proxy
    from scorer.scoring import score_parts
    from scorer.seeding import candidate_seed
    from scorer.spaces import get_space

    index, name = item
    space = get_space("nats-tss")
    arch = space.arch(index)
    parts = list(get_proxy(name).components) or [name]
    return score_parts(space, arch, parts, _probe["inputs"], _probe["targets"],
                       candidate_seed(_probe["seed"], arch), num_classes=10).seconds


def _store(cache: ScoreCache, index: int, scores, done: int, total: int, progress) -> int:
    for proxy, (score, seconds) in scores.items():
        cache.put(index, proxy, score, seconds)
    if progress:
        progress(done + 1, total)
    return done + 1


def proxy_scores(name: str, indices, cache: ScoreCache) -> list[float]:
    """A proxy's scores over `indices`; a rank aggregate (ensemble) is formed over exactly that set."""
    from scorer.proxies import get_proxy
    from scorer.proxies.ensemble import aggregate

    parts = get_proxy(name).components
    if parts:
        return aggregate({p: [cache.get(i, p) for i in indices] for p in parts})
    return [cache.get(i, name) for i in indices]
