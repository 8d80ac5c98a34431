"""`--max-params` / `--max-flops` on `knas search` and `knas submit`: passed into the job's constraints."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from knas.cli.search import build_spec


@pytest.fixture
def knas(tmp_path: Path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("KNAS_")}
    env["KNAS_HOME"] = str(tmp_path / "home")

    def run(*args: str, check: bool = True) -> subprocess.CompletedProcess:
        result = subprocess.run([sys.executable, "-m", "knas.cli.main", *args], env=env,
                                capture_output=True, text=True, timeout=600)
        if check and result.returncode != 0:
            raise AssertionError(f"knas {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
        return result

    return run


def test_search_under_a_budget_scores_only_archs_within_it(knas):
    out = knas("search", "--space", "mbv2", "--candidates", "4", "--max-params", "300000", "--max-flops", "4000000",
               "--top-k", "4", "--final", "none", "--proxy", "params", "--json").stdout
    job = json.loads(out)
    assert job["spec"]["constraints"] == {"max_params": 300000, "max_flops": 4000000}
    assert job["n_candidates"] == 4 and len(job["result"]["top_k"]) == 4
    for candidate in job["result"]["top_k"]:  # params as the worker counted them on the built net (digits: 10 classes)
        assert candidate["params"] <= 300000


def test_impossible_budget_is_one_clear_line(knas):
    result = knas("search", "--space", "mbv2", "--candidates", "2", "--top-k", "1", "--max-params", "1000",
                  check=False)
    assert result.returncode != 0
    assert "constraints.max_params=1,000: no arch of mbv2 fits" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_submit_takes_the_same_options(knas):
    help_text = knas("submit", "--help").stdout
    assert "--max-params" in help_text and "--max-flops" in help_text


def test_build_spec_passes_the_budget_through():
    common = dict(space="nats-tss", dataset="digits", n=10, all_archs=False, archs=(), proxy="mgm", probe=8,
                  top_k=1, final="none", epochs=1, seed=0, priority=0)
    spec = build_spec(**common, max_params=500_000, max_flops=None)
    assert spec.constraints.max_params == 500_000 and spec.constraints.max_flops is None
    assert build_spec(**common).constraints.model_dump() == {"max_params": None, "max_flops": None}
