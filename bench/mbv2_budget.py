"""A search on `mbv2` under a parameter budget, against a hand-designed MobileNetV2 of the same budget.

    python bench/mbv2_budget.py [--max-params 1000000] [--strategy evolution|random] [--population 12]
                                [--generations 2] [--candidates 36] [--proxy synflow] [--top-k 1]
                                [--epochs 3] [--lr 0.1] [--batch-size 64] [--seed 0] [--hand ARCH] [--json]

Both networks go through the product's own pipeline (`worker.jobs.create_job` + `run_job`, what
`knas search` runs), on `cifar10-sample` (real CIFAR-10 at 32 px: 900 train / 100 valid / 1,000
test images), in a private KNAS_HOME (a temporary folder, removed afterwards):

1. the search: candidates within `--max-params` (the job's `constraints.max_params`), drawn at
   random or bred by the evolution strategy, scored by `--proxy`; the top-k are trained with the
   product's recipe (`scorer.train.train_network`: SGD + Nesterov, cosine schedule, weight decay
   5e-4, the dataset's augmentation; `--epochs`, `--lr`, `--batch-size`) and the one with the
   best validation accuracy wins;
2. the hand-designed network (`--hand`): a job listing only it, with the same seed, proxy and
   final stage, so it is trained by exactly the same code with the same epochs, lr and batch, and
   its initialisation and training seed derived from (job seed, arch) by the same rule as every
   candidate's.

The default hand-designed network is MobileNetV2's CIFAR configuration in this space's encoding
(docs/spaces.md): its first five bottleneck stages as published, (t, c, n) = (1, 16, 1), (6, 24, 2),
(6, 32, 3), (6, 64, 4), (6, 96, 3), all 3x3 depthwise, head 1280; MobileNetV2's last two stages
(160 x 3 and 320 x 1) do not exist in a five-stage space, so stage 5 is widened from 96 to 128
(towards MobileNetV2's 160) to fill the budget: 910,346 parameters, 21.9 M MACs at 3x32x32 with
10 classes (160 wide would be 1.19 M, over budget).

These are tiny-data figures (900 training images, a few epochs), not CIFAR-10 claims.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

DEFAULT_DATA = Path(os.environ.get("KNAS_SHARED_DATA", REPO.parent / "shared" / "data"))
DATASET = "cifar10-sample"
HAND = "d1-w16-e1-k3|d2-w24-e6-k3|d3-w32-e6-k3|d4-w64-e6-k3|d3-w128-e6-k3|h1280"


def spec_for(args, candidates: dict, top_k: int):
    from knas.jobspec import JobSpec

    final = {"mode": "train", "epochs": args.epochs, "lr": args.lr, "batch_size": args.batch_size or None}
    return JobSpec.model_validate({
        "space": "mbv2", "dataset": DATASET, "candidates": candidates, "seed": args.seed, "top_k": top_k,
        "proxy": {"name": args.proxy, "batch_size": args.probe}, "final": final,
        "constraints": {"max_params": args.max_params}})


def run(store, runtime, spec, label: str) -> dict:
    """One job through the product's in-process runner; its summary (as `knas search --json` prints it)."""
    from models import Job
    from models.queries import job_summary
    from worker.jobs import create_job
    from worker.runner import run_job

    def progress(event: str, data: dict) -> None:
        if event == "trained":
            print(f"  [{label}] trained {data['arch']}: valid {data.get('valid_acc')}, test {data.get('test_acc')}",
                  file=sys.stderr, flush=True)

    start = time.perf_counter()
    job_id = create_job(store, spec)
    status = run_job(store, runtime, job_id, 25, progress)
    with store.session() as session:
        summary = job_summary(session.get(Job, job_id))
    if status != "succeeded":
        raise SystemExit(f"{label} job {job_id} ended {status}: {summary.get('error')}")
    summary["wall_seconds"] = time.perf_counter() - start
    return summary


def network(entry: dict) -> dict:
    from scorer.spaces.mbv2 import cost

    params, macs = cost(entry["arch"], 10, (3, 32, 32))
    return {"arch": entry["arch"], "params": params, "macs": macs, "score": entry.get("score"),
            "valid_acc": entry.get("valid_acc"), "test_acc": entry.get("test_acc")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--max-params", type=int, default=1_000_000)
    parser.add_argument("--strategy", choices=("evolution", "random"), default="evolution")
    parser.add_argument("--population", type=int, default=12, help="evolution: generation 0 and the parents' pool")
    parser.add_argument("--generations", type=int, default=2, help="evolution: generations bred after generation 0")
    parser.add_argument("--children", type=int, default=None, help="evolution: per generation (default: population)")
    parser.add_argument("--candidates", type=int, default=36, help="random: candidates drawn")
    parser.add_argument("--proxy", default="synflow")
    parser.add_argument("--probe", type=int, default=64)
    parser.add_argument("--top-k", type=int, default=1)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--batch-size", type=int, default=64,
                        help="0: the dataset's (256 for CIFAR: 4 steps an epoch on 900 images)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--hand", default=HAND, help="the hand-designed network (an mbv2 arch string)")
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    home = tempfile.mkdtemp(prefix="knas-mbv2-budget-")
    os.environ.update(KNAS_HOME=home, KNAS_DATA_DIR=str(args.data_dir), KNAS_DEVICE=os.environ.get("KNAS_DEVICE", "cpu"))
    os.environ.pop("KNAS_DATABASE_URL", None)
    os.environ.pop("KNAS_BROKER_URL", None)
    import shutil

    from knas.cli.common import open_store
    from knas.settings import get_settings
    from scorer.spaces.mbv2 import cost
    from worker.runtime import Runtime

    hand_params, _ = cost(args.hand, 10, (3, 32, 32))
    if hand_params > args.max_params:
        raise SystemExit(f"--hand has {hand_params:,} parameters, over --max-params {args.max_params:,}")
    if args.strategy == "evolution":
        candidates = {"strategy": "evolution", "population": args.population, "generations": args.generations,
                      "children": args.children}
    else:
        candidates = {"strategy": "random", "n": args.candidates}
    start = time.perf_counter()
    try:
        settings = get_settings()
        store = open_store()
        # No artifact folder: no per-epoch checkpoints and no export of the winner, which the comparison
        # does not need (the same Runtime the tests use); scoring and training are the product's.
        runtime = replace(Runtime.from_settings(settings, worker_name="bench"), artifact_dir=None)
        search = run(store, runtime, spec_for(args, candidates, args.top_k), "search")
        hand = run(store, runtime, spec_for(args, {"strategy": "list", "archs": [args.hand]}, 1), "hand")
    finally:
        shutil.rmtree(home, ignore_errors=True)
    result = {
        "space": "mbv2", "dataset": DATASET, "max_params": args.max_params, "strategy": args.strategy,
        "candidates": candidates, "candidates_scored": search["n_candidates"], "proxy": args.proxy,
        "probe": args.probe, "top_k": args.top_k, "seed": args.seed,
        "recipe": {"epochs": args.epochs, "lr": args.lr, "batch_size": args.batch_size or "dataset default"},
        "searched": network(search["result"]["winner"]),
        "top_k_trained": [network(e) for e in search["result"]["top_k"]],
        "hand": network(hand["result"]["winner"]),
        "seconds": {"search_job": search["wall_seconds"], "hand_job": hand["wall_seconds"],
                    "scoring": search["result"]["compute_seconds"]["scoring"],
                    "training": search["result"]["compute_seconds"]["training"],
                    "hand_training": hand["result"]["compute_seconds"]["training"],
                    "total": time.perf_counter() - start},
    }
    if args.json:
        print(json.dumps(result, indent=1))
        return
    print(f"mbv2 on {DATASET} under {args.max_params:,} parameters: {args.strategy} search, "
          f"{result['candidates_scored']} candidates scored by {args.proxy} (probe {args.probe}), top-{args.top_k} "
          f"trained; both nets trained {args.epochs} epochs, lr {args.lr}, batch {result['recipe']['batch_size']}, "
          f"seed {args.seed}")
    print(f"{'network':9s} {'params':>9s} {'MACs':>7s} {'valid %':>8s} {'test %':>7s}  arch")
    for name, net in (("searched", result["searched"]), ("hand", result["hand"])):
        print(f"{name:9s} {net['params']:9,d} {net['macs'] / 1e6:6.1f}M {net['valid_acc']:8.1f} {net['test_acc']:7.1f}  "
              f"{net['arch']}")
    for net in result["top_k_trained"]:
        print(f"  top-k: {net['params']:9,d} {net['macs'] / 1e6:6.1f}M valid {net['valid_acc']:.1f} "
              f"test {net['test_acc']:.1f}  {net['arch']}")
    s = result["seconds"]
    print(f"seconds: search job {s['search_job']:.0f} (scoring {s['scoring']:.0f}, training {s['training']:.0f}), "
          f"hand job {s['hand_job']:.0f}, total {s['total']:.0f}")


if __name__ == "__main__":
    main()
