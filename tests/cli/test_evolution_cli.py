"""`knas search --generations` runs an evolution job under a budget, and its winner exports with a
card whose reproduce line runs the same search."""
from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys

from scorer.spaces import get_space


def test_evolution_on_mbv2_under_a_budget_from_the_cli(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("KNAS_")}
    env.update(KNAS_HOME=str(tmp_path / "home"), OMP_NUM_THREADS="1")

    def knas(*args: str) -> subprocess.CompletedProcess:
        done = subprocess.run([sys.executable, "-m", "knas.cli.main", *args], env=env, capture_output=True, text=True,
                              timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
        return done

    args = ["search", "--space", "mbv2", "--dataset", "digits", "--candidates", "3", "--generations", "2",
            "--children", "2", "--proxy", "params", "--probe", "8", "--top-k", "1", "--epochs", "1",
            "--max-params", "150000", "--seed", "4"]
    job = json.loads(knas(*args, "--json").stdout)
    assert job["status"] == "succeeded" and job["n_candidates"] == 7
    assert job["spec"]["candidates"]["strategy"] == "evolution"
    ranked = json.loads(knas("jobs", "show", job["id"], "--candidates", "10", "--json").stdout)["candidates"]
    space = get_space("mbv2")
    assert len(ranked) == 7 and all(space.cost(c["arch"], 10, (1, 16, 16))[0] <= 150_000 for c in ranked)
    knas("export", job["id"], "--output", str(tmp_path / "model"))
    card = json.loads((tmp_path / "model" / "card.json").read_text())
    again = json.loads(knas(*shlex.split(card["reproduce"])[1:], "--json").stdout)  # the card's command, run
    assert again["id"] != job["id"]
    rerun = json.loads(knas("jobs", "show", again["id"], "--candidates", "10", "--json").stdout)["candidates"]
    assert [(c["arch"], c["rank"]) for c in rerun] == [(c["arch"], c["rank"]) for c in ranked]
