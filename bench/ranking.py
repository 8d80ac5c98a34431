"""How well does each proxy rank NAS-Bench-201? Kendall tau / Spearman rho against 200-epoch accuracy.

    python bench/ranking.py [--archs 1000] [--seed 0] [--probe 64] [--proxies mgm zico ...]
                            [--repeats R] [--naslib] [--jobs N] [--json]

A seeded random sample of nats-tss archs is scored with every registered proxy on a probe batch of
real CIFAR-10 images (../shared/data/cifar10-sample), and each proxy's scores are correlated with
the benchmark's 200-epoch CIFAR-10 test accuracy. `ensemble` is the rank aggregation of its
components over the same sample (no fitting to labels). `--repeats R` re-scores with R different
probe batches / init seeds and reports each proxy's rank stability (Kendall tau between repeats).
`--naslib` also scores NASLib's 491 archs with synflow/snip/grad_norm and reports the Spearman
agreement with NASLib's precomputed values. Scores are cached under .artifacts/.
"""
from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from nb201 import (  # noqa: E402
    DEFAULT_CACHE, DEFAULT_DATA, ScoreCache, proxy_scores, score_archs, test_accuracy, time_alone,
)

EXPENSIVE = {"mgm-offdiag"}  # per-sample norms: ~5x mgm; only on request


def correlations(x, y) -> tuple[float, float]:
    """Unrounded tau and rho (NaN where undefined, as the tables print it)."""
    from scorer.correlation import rank_correlations

    return tuple(float("nan") if v is None else v for v in rank_correlations(x, y, digits=None))


def per_net_proxies(requested: list[str] | None) -> tuple[list[str], list[str]]:
    from scorer.proxies import get_proxy, list_proxies

    names = requested or [p for p in list_proxies() if p not in EXPENSIVE]
    aggregates = [n for n in names if get_proxy(n).components]
    needed = {n for n in names if not get_proxy(n).components}
    for name in aggregates:
        needed |= set(get_proxy(name).components)
    return sorted(needed), aggregates


def evaluate(indices, proxies, aggregates, cache, accuracy) -> dict[str, dict[str, float]]:
    """Correlations per proxy, plus seconds per arch: alone (what a job with only it pays, where
    measured) and shared (its part when scored together with every other proxy)."""
    from scorer.proxies import get_proxy

    acc = [accuracy[i] for i in indices]
    table = {}
    for name in [*proxies, *aggregates]:
        parts = get_proxy(name).components or (name,)
        kendall, spearman = correlations(proxy_scores(name, indices, cache), acc)
        shared = sum(cache.seconds(i, p) or 0.0 for i in indices for p in parts) / len(indices)
        alone = cache.alone_seconds(name)
        table[name] = {"kendall": kendall, "spearman": spearman,
                       "seconds_per_arch": shared if alone is None else alone, "shared_seconds_per_arch": shared}
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--archs", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--probe", type=int, default=64)
    parser.add_argument("--proxies", nargs="*", default=None)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--naslib", action="store_true")
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1,
                        help="scoring processes, one torch thread each (default: one per core)")
    parser.add_argument("--timing-archs", type=int, default=10,
                        help="archs on which each proxy is also timed on its own (0: skip)")
    parser.add_argument("--cached-only", action="store_true",
                        help="score nothing: evaluate the sampled archs the cache already has every score for")
    args = parser.parse_args()

    import torch

    from scorer.data import probe_batch

    log = (lambda *a: print(*a, file=sys.stderr)) if args.json else print
    began = time.time()
    accuracy = test_accuracy(args.data_dir)
    indices = random.Random(args.seed).sample(range(len(accuracy)), args.archs)
    proxies, aggregates = per_net_proxies(args.proxies)
    log(f"{args.archs} nats-tss archs (seed {args.seed}), probe {args.probe} real CIFAR-10 images, "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads; proxies: {', '.join(proxies + aggregates)}")

    tables, caches = [], []
    for repeat in range(args.repeats if args.archs else 0):
        seed = args.seed + repeat
        inputs, targets = probe_batch("cifar10-sample", args.probe, seed, data_dir=args.data_dir)
        cache = ScoreCache(args.cache, args.probe, seed, "cifar10-sample")
        start = time.time()

        def progress(done, total, repeat=repeat, start=start):  # bound: this repeat's
            if done % 50 == 0 or done == total:
                log(f"  repeat {repeat + 1}/{args.repeats}: {done}/{total} archs, {time.time() - start:.0f} s")

        if args.cached_only:
            indices = [i for i in indices if all(cache.get(i, p) is not None for p in proxies)]
            log(f"  {len(indices)} of the sampled archs are fully cached")
        else:
            score_archs(indices, proxies, cache, inputs, targets, seed, progress, jobs=args.jobs)
            if repeat == 0 and args.timing_archs:
                time_alone(indices[:args.timing_archs], proxies + aggregates, cache, inputs, targets, seed,
                           jobs=args.jobs)
        tables.append(evaluate(indices, proxies, aggregates, cache, accuracy))
        caches.append(cache)

    result = {name: dict(tables[0][name]) for name in tables[0]} if tables else {}
    if args.repeats > 1:
        for name in result:
            taus = [correlations(proxy_scores(name, indices, a), proxy_scores(name, indices, b))[0]
                    for a, b in itertools.combinations(caches, 2)]
            result[name]["repeat_kendall"] = sum(taus) / len(taus)
            result[name]["kendall_over_repeats"] = [t[name]["kendall"] for t in tables]

    naslib = None
    if args.naslib:
        import csv

        from scipy.stats import spearmanr

        with open(args.data_dir / "nb201" / "naslib_zc_nasbench201_subset.csv", newline="") as f:
            rows = [r for r in csv.DictReader(f) if r["dataset"] == "cifar10"]
        nl_indices = [int(r["arch_index"]) for r in rows]
        nl_proxies = ["synflow", "snip", "grad_norm"]
        inputs, targets = probe_batch("cifar10-sample", args.probe, args.seed, data_dir=args.data_dir)
        cache = ScoreCache(args.cache, args.probe, args.seed, "cifar10-sample")
        score_archs(nl_indices, nl_proxies, cache, inputs, targets, args.seed, jobs=args.jobs)
        naslib = {p: float(spearmanr([cache.get(i, p) for i in nl_indices], [float(r[p]) for r in rows]).statistic)
                  for p in nl_proxies}

    if args.json:
        print(json.dumps({**result, **({"naslib_agreement": naslib} if naslib else {})}, indent=2))
        return
    header = f"{'proxy':13s} {'kendall':>8s} {'spearman':>9s} {'s/arch':>7s} {'shared':>7s}"
    if args.repeats > 1:
        header += f" {'stability':>10s}"
    if result:
        print(header)
    for name, row in sorted(result.items(), key=lambda kv: -kv[1]["kendall"]):
        line = (f"{name:13s} {row['kendall']:8.3f} {row['spearman']:9.3f} {row['seconds_per_arch']:7.3f} "
                f"{row['shared_seconds_per_arch']:7.3f}")
        if args.repeats > 1:
            line += f" {row['repeat_kendall']:10.3f}"
        print(line)
    if result:
        together = sum(row["shared_seconds_per_arch"] for name, row in result.items() if name not in aggregates)
        print(f"s/arch: one core, the proxy scored alone (on {args.timing_archs} archs); shared: its part when "
              f"all are scored together, {together:.2f} s/arch in all; this run took {time.time() - began:.0f} s")
    if naslib:
        print("Spearman agreement with NASLib's precomputed scores (491 archs, CIFAR-10): "
              + ", ".join(f"{k} {v:.3f}" for k, v in naslib.items()))


if __name__ == "__main__":
    main()
