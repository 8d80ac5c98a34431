"""The KNAS search protocol on NAS-Bench-201, as a benchmark.

    python bench/search.py [--n 100 1000] [--k 10 40] [--seeds 20] [--proxies mgm ensemble] [--pool 1000]

For each seed: draw N candidates, keep the top-k by the proxy, pick the winner by the
benchmark's 12-epoch validation accuracy (the cheap "short training" KNAS used), and report the
winner's 200-epoch CIFAR-10 test accuracy, mean ± std over seeds, with the scoring seconds spent.

Candidates are drawn from a pool of `--pool` seeded-random archs scored once on real CIFAR-10
probes (shared with bench/ranking.py through the score cache): scoring every draw afresh would
cost hours on 2 CPU cores. Draws from a uniform pool are uniform draws from the space; when N is
close to the pool size the seeds share most candidates, which the output says. An `oracle` row
(top-k by the true test accuracy, winner still by 12-epoch validation) shows what a perfect ranker
gets, and the mean best test accuracy among the N drawn is the ceiling of any winner.
"""
from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from nb201 import (  # noqa: E402
    DEFAULT_CACHE, DEFAULT_DATA, ScoreCache, proxy_scores, score_archs, short_valid_accuracy, test_accuracy,
)
from ranking import per_net_proxies  # noqa: E402

ANCHORS = {"NASWOT (N=100)": 92.81, "KNAS (paper)": 93.43, "TE-NAS": 93.9, "ZiCo": 94.0, "optimum": 94.37}


ORACLE = "oracle"  # a perfect ranker: top-k by the 200-epoch test accuracy itself
CEILING_DRAWS = 2000  # draws from the whole space for the protocol's ceiling (pure look-ups: ~1 s)


def ceiling(cells, n, ks, draws, valid12, test200) -> tuple[float, dict[int, float]]:
    """Over draws 0..`draws`-1 of N of `cells` (seeded as `run` draws): the mean best test
    accuracy among the N (no winner can beat it) and, per k, the mean winner of a perfect ranker."""
    best, perfect = [], {k: [] for k in ks}
    for seed in range(draws):
        ranked = sorted(random.Random(seed).sample(cells, n), key=lambda i: -test200[i])
        best.append(test200[ranked[0]])
        for k in ks:
            perfect[k].append(test200[max(ranked[:k], key=lambda i: valid12[i])])
    return statistics.mean(best), {k: statistics.mean(v) for k, v in perfect.items()}


def run(name, pool, n, k, seeds, cache, valid12, test200) -> dict:
    accs, seconds = [], []
    parts = [] if name == ORACLE else per_net_proxies([name])[0]
    for seed in range(seeds):
        candidates = random.Random(seed).sample(pool, n)
        if name == ORACLE:  # what a perfect ranker passes on to the 12-epoch pick
            scores = [test200[i] for i in candidates]
        else:
            scores = proxy_scores(name, candidates, cache)  # aggregates are formed over the N drawn
        top = [c for _, c in sorted(zip(scores, candidates), reverse=True)[:k]]
        winner = max(top, key=lambda i: valid12[i])
        accs.append(test200[winner])
        alone = None if name == ORACLE else cache.alone_seconds(name)  # a job with only this proxy
        seconds.append(n * alone if alone is not None else
                       sum(cache.seconds(i, p) or 0.0 for i in candidates for p in parts))
    return {"mean": statistics.mean(accs), "std": statistics.pstdev(accs), "seconds": statistics.mean(seconds)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--k", type=int, nargs="+", default=[10, 40])
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--proxies", nargs="+", default=["mgm", "ensemble", "zico", "naswot", "synflow"])
    parser.add_argument("--pool", type=int, default=1000)
    parser.add_argument("--pool-seed", type=int, default=0)
    parser.add_argument("--probe", type=int, default=64)
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1,
                        help="scoring processes, one torch thread each (default: one per core)")
    parser.add_argument("--cached-only", action="store_true",
                        help="score nothing: use the part of the pool the cache already has every score for")
    args = parser.parse_args()

    from scorer.data import probe_batch

    test200, valid12 = test_accuracy(args.data_dir), short_valid_accuracy(args.data_dir)
    pool = random.Random(args.pool_seed).sample(range(len(test200)), args.pool)  # = bench/ranking.py's sample
    needed = sorted({p for name in args.proxies for p in per_net_proxies([name])[0]})
    inputs, targets = probe_batch("cifar10-sample", args.probe, args.pool_seed, data_dir=args.data_dir)
    cache = ScoreCache(args.cache, args.probe, args.pool_seed, "cifar10-sample")
    if args.cached_only:
        pool = [i for i in pool if all(cache.get(i, p) is not None for p in needed)]
        args.pool = len(pool)
    else:
        score_archs(pool, needed, cache, inputs, targets, args.pool_seed,
                    lambda d, t: d % 100 == 0 and print(f"  scoring pool: {d}/{t}", file=sys.stderr), jobs=args.jobs)

    print(f"winner's 200-epoch CIFAR-10 test accuracy, mean ± std over {args.seeds} seeds "
          f"(pool {args.pool}, probe {args.probe}; top-k chosen by proxy, winner by 12-epoch valid acc)")
    print(f"{'proxy':10s} {'N':>5s} {'k':>4s} {'accuracy':>15s} {'scoring s':>10s}")
    for n in args.n:
        if n > args.pool:
            print(f"  N={n} is larger than the pool ({args.pool}); skipped")
            continue
        for k in args.k:
            for name in [*args.proxies, ORACLE]:
                r = run(name, pool, n, k, args.seeds, cache, valid12, test200)
                print(f"{name:10s} {n:5d} {k:4d} {r['mean']:8.2f} ± {r['std']:4.2f} {r['seconds']:10.1f}")
        best, _ = ceiling(pool, n, [], args.seeds, valid12, test200)  # the perfect ranker of these draws: oracle
        print(f"  N={n}: the best test accuracy among the N drawn averages {best:.2f}, the ceiling "
              f"of any winner; '{ORACLE}' = a perfect ranker (its winner is still picked by 12-epoch accuracy)")
        best, perfect = ceiling(range(len(test200)), n, args.k, CEILING_DRAWS, valid12, test200)
        print(f"  N={n}, {CEILING_DRAWS:,} draws from all {len(test200):,} cells: the best among the N averages "
              f"{best:.2f}; a perfect ranker's winner " + ", ".join(f"{v:.2f} (k={k})" for k, v in perfect.items()))
        if n > args.pool // 2:
            print(f"  note: N={n} draws from a pool of {args.pool}: seeds share most candidates")
    print("anchors: " + ", ".join(f"{name} {acc}" for name, acc in ANCHORS.items()))


if __name__ == "__main__":
    main()
