"""bench/evolution.py and bench/mbv2_budget.py run end to end on real shared data (tiny sizes, cheap proxies),
and the benchmark's evolution is the product's: the same candidates as an evolution job with the same spec."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import torch

from tests.support.paths import REPO
from tests.support.require import require_shared



def bench(script: str, *args: str) -> subprocess.CompletedProcess:
    data = require_shared("cifar10-sample").parent
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, str(REPO / "bench" / script), "--data-dir", str(data), *args],
                          env=env, capture_output=True, text=True, timeout=120)


EVOLUTION = ("--proxy", "params", "--budgets", "8,12", "--seeds", "2", "--seed", "3", "--population", "4",
             "--children", "4", "--tournament", "2", "--k", "3", "--probe", "8", "--jobs", "1", "--json")


def test_evolution_compares_strategies_at_the_same_budget_and_reuses_the_cache(tmp_path):
    require_shared("nb201")
    cache = tmp_path / "scores.json"
    result = bench("evolution.py", *EVOLUTION, "--cache", str(cache))
    assert result.returncode == 0, result.stderr
    table = json.loads(result.stdout)
    assert [(r["strategy"], r["budget"]) for r in table["rows"]] == [
        ("random", 8), ("evolution", 8), ("random", 12), ("evolution", 12)]
    for row in table["rows"]:
        assert len(row["candidates"]) == 2 and all(len(c) == len(set(c)) == row["budget"] for c in row["candidates"])
        assert 80 < row["mean"] <= row["best_scored"] <= 94.37 and len(row["winners"]) == 2  # a winner is one scored
        assert row["oracle"] <= row["best_scored"]
    evolution_8, evolution_12 = table["rows"][1]["candidates"], table["rows"][3]["candidates"]
    assert all(long[:8] == short for short, long in zip(evolution_8, evolution_12))  # a longer run extends a shorter one
    assert table["seeds"] == [3, 4] and set(table["random_reference"]) == {"8", "12", "1000"}
    assert 93.9 < table["random_reference"]["1000"]["oracle"] < 94.3  # the target, from look-ups
    assert table["archs_scored_now"] > 0

    again = json.loads(bench("evolution.py", *EVOLUTION, "--cache", str(cache)).stdout)
    assert again["archs_scored_now"] == 0 and again["rows"] == table["rows"]  # every score from the cache


def test_the_benchmark_breeds_what_an_evolution_job_breeds(tmp_path, store):
    """`params` does not depend on the probe or the init seed, so the job's fitness is the benchmark's."""
    require_shared("nb201")
    from sqlalchemy import select

    from knas.jobspec import JobSpec
    from models import Candidate
    from scorer.spaces import get_space
    from worker import jobs, runner
    from worker.runtime import Runtime

    result = bench("evolution.py", *EVOLUTION, "--cache", str(tmp_path / "scores.json"))
    assert result.returncode == 0, result.stderr
    benchmark = json.loads(result.stdout)["rows"][3]["candidates"][0]  # evolution, budget 12, seed 3
    spec = JobSpec.model_validate({
        "space": "nats-tss", "dataset": "tiny", "seed": 3, "top_k": 3, "final": {"mode": "none"},
        "proxy": {"name": "params", "batch_size": 8},
        "candidates": {"strategy": "evolution", "population": 4, "generations": 2, "children": 4, "tournament": 2}})
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        job_id = jobs.create_job(store, spec)
        assert runner.run_job(store, Runtime(device="cpu", worker_name="test"), job_id, chunk_size=4) == "succeeded"
    finally:
        torch.set_num_threads(threads)
    with store.session() as session:
        rows = session.execute(select(Candidate.arch, Candidate.generation).where(Candidate.job_id == job_id)).all()
    space = get_space("nats-tss")
    for generation in range(3):
        job = {space.index(arch) for arch, g in rows if g == generation}
        assert job == set(benchmark[4 * generation: 4 * generation + 4])


def test_mbv2_budget_trains_the_searched_and_the_hand_designed_net_alike():
    result = bench("mbv2_budget.py", "--max-params", "300000", "--strategy", "evolution", "--population", "3",
                   "--generations", "1", "--children", "2", "--proxy", "params", "--probe", "8", "--top-k", "1",
                   "--epochs", "1", "--batch-size", "128",
                   "--hand", "d1-w16-e1-k3|d1-w24-e6-k3|d1-w32-e6-k3|d1-w64-e6-k3|d1-w96-e6-k3|h256", "--json")
    assert result.returncode == 0, result.stderr
    table = json.loads(result.stdout)
    assert table["candidates_scored"] == 5
    for name in ("searched", "hand"):
        net = table[name]
        assert 0 < net["params"] <= 300_000 and net["macs"] > 0 and 0 <= net["test_acc"] <= 100
    assert table["hand"]["arch"] == "d1-w16-e1-k3|d1-w24-e6-k3|d1-w32-e6-k3|d1-w64-e6-k3|d1-w96-e6-k3|h256"
    assert table["recipe"] == {"epochs": 1, "lr": 0.1, "batch_size": 128}
