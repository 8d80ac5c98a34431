"""Evolution vs random sampling on NATS-Bench topology (NAS-Bench-201), at the same number of scored candidates.

    python bench/evolution.py [--proxy synflow] [--budgets 100,300] [--seeds 10] [--seed 0] [--k 10]
                              [--population 20] [--children 20] [--tournament 5] [--crossover 0] [--mutations 1]
                              [--probe 64] [--jobs 2] [--json]

For each job seed s in seed .. seed+seeds-1 and each budget B (scored candidates):

- random: the product's random strategy, `JobSpec(candidates={"strategy": "random", "n": B}).resolve_archs()`;
- evolution: the product's evolution strategy with population P and C children per generation,
  (B - P) / C generations: generation 0 from `JobSpec.resolve_archs()`, every later generation from
  `scorer.evolution.breed` called exactly as `worker.pipeline.next_generation` calls it (same
  fitness, `worker.pipeline._fitness`: for a rank aggregate the aggregate over everything scored
  so far; same `seen`, `allowed`, and `random.Random(f"knas-evolution:{s}:{generation}")`).

Then the search protocol of bench/search.py: top-k of the B candidates by the proxy (ties as the
product's `rank`: by arch index), the winner picked by NATS-Bench's 12-epoch validation
accuracy, reported as its 200-epoch CIFAR-10 test accuracy, mean ± std over the seeds. Beside
each row: the best test accuracy among the B scored (the ceiling of any winner of that search)
and what a perfect ranker would pick from the same B (oracle). The protocol's reference for random
sampling, over 2,000 draws from all 15,625 cells (pure look-ups), is printed for each budget and
for N = 1,000.

Candidates are scored on demand with `scorer.score_arch` on one probe batch of real CIFAR-10
images (`../shared/data/cifar10-sample`, probe seed `--probe-seed`, each net initialised from
(probe seed, arch) as bench/ranking.py does), and the scores are cached under .artifacts/ in the
cache bench/ranking.py and bench/search.py use: a candidate is scored once for all seeds and
both strategies. The job seed only changes which candidates are drawn and bred.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time
from pathlib import Path
from types import SimpleNamespace

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

import nb201  # noqa: E402
from nb201 import DEFAULT_CACHE, DEFAULT_DATA, ScoreCache, short_valid_accuracy, test_accuracy  # noqa: E402
from search import ANCHORS, CEILING_DRAWS, ceiling  # noqa: E402

DATASET = "cifar10-sample"  # the probe's dataset; also the job spec's (10 classes, 32 px)
REFERENCE_N = 1000  # the goal: evolution at 300 reaching what random sampling needs 1,000 for


# ---------------------------------------------------------------- scoring on demand, cached

def _score(item) -> tuple[int, dict[str, tuple[float, float]]]:
    """One arch's proxy (an aggregate: its components) with scorer.score_arch, in a pool worker."""
    import scorer
    from scorer.seeding import candidate_seed

    index, proxy = item
    space = scorer.get_space("nats-tss")
    arch = space.arch(index)
    probe = nb201._probe  # set by nb201._init_worker: the probe batch and its seed
    result = scorer.score_arch(space, arch, proxy, probe["inputs"], probe["targets"],
                               candidate_seed(probe["seed"], arch), num_classes=10)
    return index, {name: (value, result.part_seconds[name]) for name, value in result.scores.items()}


class Scorer:
    """Scores missing (arch, proxy) pairs in `jobs` single-thread processes, kept open for the whole run."""

    def __init__(self, proxy: str, cache: ScoreCache, inputs, targets, probe_seed: int, jobs: int) -> None:
        import scorer

        self.proxy, self.cache, self.space = proxy, cache, scorer.get_space("nats-tss")
        components = scorer.get_proxy(proxy).components
        self.name, self.aggregate = scorer.get_proxy(proxy).name, bool(components)
        self.parts = list(components) or [self.name]
        self.scored, self.seconds = 0, 0.0  # archs scored by this run, and their proxy seconds
        self._pool = None
        if jobs > 1:
            import multiprocessing

            self._pool = multiprocessing.get_context("spawn").Pool(
                jobs, initializer=nb201._init_worker, initargs=(inputs, targets, probe_seed))
        else:
            nb201._init_worker(inputs, targets, probe_seed, threads=None)

    def ensure(self, indices) -> None:
        todo = sorted({i for i in indices if any(self.cache.get(i, p) is None for p in self.parts)})
        if not todo:
            return
        items = [(i, self.proxy) for i in todo]
        results = self._pool.imap_unordered(_score, items, chunksize=4) if self._pool else map(_score, items)
        for index, scores in results:
            for name, (value, seconds) in scores.items():
                self.cache.put(index, name, value, seconds)
            self.scored += 1
            self.seconds += sum(scores[p][1] for p in self.parts)
        self.cache.save()

    def rows(self, indices) -> list[SimpleNamespace]:
        """Scored candidates as worker.pipeline._fitness reads them (arch, score, scores), in candidate order."""
        return [SimpleNamespace(arch=self.space.arch(i), score=None if self.aggregate else self.cache.get(i, self.name),
                                scores={p: self.cache.get(i, p) for p in self.parts})
                for i in indices]

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool.join()


# ---------------------------------------------------------------- the two strategies

def job_spec(args, seed: int, candidates: dict):
    from knas.jobspec import JobSpec

    return JobSpec.model_validate({
        "space": "nats-tss", "dataset": DATASET, "candidates": candidates, "seed": seed,
        "proxy": {"name": args.proxy, "batch_size": args.probe}, "top_k": args.k, "final": {"mode": "benchmark"}})


def evolution_spec(args, seed: int, budget: int):
    extra = budget - args.population
    if extra < 0 or extra % args.children:
        raise SystemExit(f"budget {budget}: evolution scores population + generations x children = "
                         f"{args.population} + G x {args.children}; pick a budget of that form")
    return job_spec(args, seed, {"strategy": "evolution", "population": args.population,
                                 "generations": extra // args.children, "children": args.children,
                                 "tournament": args.tournament, "crossover": args.crossover,
                                 "mutations": args.mutations})


def run_evolution(specs: list, scorer_: Scorer) -> list[list[int]]:
    """Evolution jobs run side by side, generation by generation, so each generation's children of every
    seed are scored together (in parallel). Returns each job's scored arch indices in candidate order."""
    from scorer.evolution import breed
    from worker.pipeline import _budget, _fitness

    space = scorer_.space
    scored = [[space.index(a) for a in spec.resolve_archs()] for spec in specs]  # generation 0
    scorer_.ensure(i for job in scored for i in job)
    ended = [False] * len(specs)  # a generation that bred nothing new ends the job, as in next_generation
    for generation in range(max(spec.candidates.generations for spec in specs)):
        for j, (spec, job) in enumerate(zip(specs, scored)):
            evolution = spec.candidates
            if generation >= evolution.generations or ended[j]:
                continue
            fitness = _fitness(scorer_.rows(job), spec.proxy.name)
            children = breed(space, fitness, {space.arch(i) for i in job}, children=evolution.per_generation,
                             population_size=evolution.population, tournament_size=evolution.tournament,
                             crossover_rate=evolution.crossover, mutations=evolution.mutations,
                             allowed=_budget(spec, None),
                             rng=random.Random(f"knas-evolution:{spec.seed}:{generation + 1}"))
            job.extend(space.index(child.arch) for child in children)
            ended[j] = not children
        scorer_.ensure(i for job in scored for i in job)
    return scored


def pick(job: list[int], fitness: dict[str, float], k: int, arch_of, valid12) -> int:
    """The protocol: top-k by fitness (ties by arch index, as the product's rank), winner by 12-epoch valid acc."""
    top = sorted(job, key=lambda i: (-fitness[arch_of(i)], i))[:k]
    return max(top, key=lambda i: valid12[i])


def summarise(jobs: list[list[int]], proxy: str, k: int, scorer_: Scorer, valid12, test200) -> dict:
    from worker.pipeline import _fitness

    winners, best, perfect = [], [], []
    for job in jobs:
        fitness = _fitness(scorer_.rows(job), proxy)  # the final ranking: over all the job scored
        winners.append(test200[pick(job, fitness, k, scorer_.space.arch, valid12)])
        best.append(max(test200[i] for i in job))
        perfect.append(test200[max(sorted(job, key=lambda i: -test200[i])[:k], key=lambda i: valid12[i])])
    return {"mean": statistics.mean(winners), "std": statistics.pstdev(winners), "winners": winners,
            "best_scored": statistics.mean(best), "oracle": statistics.mean(perfect),
            "scored": statistics.mean(len(job) for job in jobs),
            "candidates": jobs}  # per seed: the arch indices scored, in candidate order


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--proxy", default="synflow", help="any registered proxy; ensemble works but costs ~20x")
    parser.add_argument("--budgets", default="100,300", help="scored candidates per search, comma-separated")
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0, help="first job seed")
    parser.add_argument("--k", type=int, default=10, help="top-k passed to the 12-epoch pick")
    parser.add_argument("--population", type=int, default=None, help="default: the job spec's")
    parser.add_argument("--children", type=int, default=None, help="per generation; default: the population")
    parser.add_argument("--tournament", type=int, default=None, help="default: the job spec's")
    parser.add_argument("--crossover", type=float, default=None, help="default: the job spec's")
    parser.add_argument("--mutations", type=int, default=None, help="default: the job spec's")
    parser.add_argument("--probe", type=int, default=64)
    parser.add_argument("--probe-seed", type=int, default=0, help="probe batch and init seed (bench/ranking.py's --seed)")
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    parser.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1),
                        help="scoring processes, one torch thread each")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args()

    from knas.jobspec import EvolutionCandidates

    defaults = EvolutionCandidates()
    for name in ("population", "tournament", "crossover", "mutations"):
        if getattr(args, name) is None:
            setattr(args, name, getattr(defaults, name))
    args.children = args.children or args.population
    budgets = [int(b) for b in args.budgets.split(",")]
    seeds = list(range(args.seed, args.seed + args.seeds))

    import scorer

    start = time.perf_counter()
    test200, valid12 = test_accuracy(args.data_dir), short_valid_accuracy(args.data_dir)
    inputs, targets = scorer.probe_batch(DATASET, args.probe, args.probe_seed, data_dir=args.data_dir)
    cache = ScoreCache(args.cache, args.probe, args.probe_seed, DATASET)
    scorer_ = Scorer(args.proxy, cache, inputs, targets, args.probe_seed, args.jobs)
    space = scorer_.space
    rows, references = [], {}
    try:
        for budget in budgets:
            random_jobs = [[space.index(a) for a in job_spec(args, s, {"strategy": "random", "n": budget}).resolve_archs()]
                           for s in seeds]
            scorer_.ensure(i for job in random_jobs for i in job)
            evolution_jobs = run_evolution([evolution_spec(args, s, budget) for s in seeds], scorer_)
            for strategy, jobs in (("random", random_jobs), ("evolution", evolution_jobs)):
                rows.append({"strategy": strategy, "budget": budget, "k": args.k,
                             **summarise(jobs, args.proxy, args.k, scorer_, valid12, test200)})
        for n in sorted({*budgets, REFERENCE_N}):
            best, perfect = ceiling(range(len(test200)), n, [args.k], CEILING_DRAWS, valid12, test200)
            references[n] = {"ceiling": best, "oracle": perfect[args.k]}
    finally:
        scorer_.close()
    seconds = scorer_.seconds / scorer_.scored if scorer_.scored else None
    result = {
        "proxy": args.proxy, "k": args.k, "seeds": seeds, "probe": args.probe, "probe_seed": args.probe_seed,
        "evolution": {"population": args.population, "children": args.children, "tournament": args.tournament,
                      "crossover": args.crossover, "mutations": args.mutations},
        "rows": rows, "random_reference": references, "anchors": ANCHORS,
        "archs_scored_now": scorer_.scored, "proxy_seconds_per_arch": seconds,
        "wall_seconds": time.perf_counter() - start,
    }
    if args.json:
        print(json.dumps(result))
        return
    print(f"winner's 200-epoch CIFAR-10 test accuracy (%), mean ± std over {len(seeds)} seeds "
          f"({seeds[0]}..{seeds[-1]}); proxy {args.proxy}, probe {args.probe}; top-{args.k} by proxy, "
          f"winner by 12-epoch valid acc")
    print(f"evolution: population {args.population}, {args.children} children/generation, tournament "
          f"{args.tournament}, crossover {args.crossover}, mutations {args.mutations}")
    print(f"{'strategy':10s} {'N':>5s} {'winner':>15s} {'oracle':>7s} {'best':>7s}")
    for row in rows:
        print(f"{row['strategy']:10s} {row['budget']:5d} {row['mean']:8.2f} ± {row['std']:4.2f} "
              f"{row['oracle']:7.2f} {row['best_scored']:7.2f}")
    print("  oracle = a perfect ranker's winner among the same N (top-k by test acc, then the 12-epoch pick); "
          "best = the best test accuracy among the N scored (no winner can beat it)")
    for n, ref in references.items():
        print(f"  random sampling, N={n}, {CEILING_DRAWS:,} draws from all {len(test200):,} cells: "
              f"oracle {ref['oracle']:.2f} (k={args.k}), ceiling {ref['ceiling']:.2f}")
    timing = f"{seconds:.3f} s/arch" if seconds is not None else "all from the cache"
    print(f"scored now: {scorer_.scored} archs ({timing}, one thread each, {args.jobs} processes); "
          f"wall {result['wall_seconds']:.0f} s")
    print("anchors: " + ", ".join(f"{name} {acc}" for name, acc in ANCHORS.items()))


if __name__ == "__main__":
    main()
