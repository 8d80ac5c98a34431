"""The benchmark scripts run end to end on real shared data (tiny sizes, cheap proxies)."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from scorer.proxies import get_proxy
from tests.support.paths import REPO
from tests.support.require import require_shared



def bench(script: str, *args: str, cache: Path) -> subprocess.CompletedProcess:
    data = require_shared("nb201").parent
    require_shared("cifar10-sample")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, str(REPO / "bench" / script), "--data-dir", str(data),
                           "--cache", str(cache), *args], env=env, capture_output=True, text=True, timeout=600)


def test_ranking_prints_correlations_and_repeat_stability_per_proxy(tmp_path):
    cache = tmp_path / "scores.json"
    result = bench("ranking.py", "--archs", "6", "--probe", "8", "--proxies", "params", "synflow", "ensemble",
                   "--repeats", "2", "--jobs", "2", "--json", cache=cache)
    assert result.returncode == 0, result.stderr
    table = json.loads(result.stdout)
    assert set(table) == {"params", "synflow", "ensemble", *get_proxy("ensemble").components}
    for row in table.values():
        assert -1 <= row["kendall"] <= 1 and -1 <= row["spearman"] <= 1 and row["seconds_per_arch"] >= 0
        assert len(row["kendall_over_repeats"]) == 2 and -1 <= row["repeat_kendall"] <= 1
    assert table["params"]["repeat_kendall"] == 1.0  # parameter count does not depend on the probe batch

    again = bench("ranking.py", "--archs", "6", "--probe", "8", "--proxies", "params", "synflow", "--cached-only",
                  "--json", cache=cache)
    assert json.loads(again.stdout)["synflow"]["kendall"] == table["synflow"]["kendall"]  # from the cache


def test_search_reports_the_protocol_with_anchors(tmp_path):
    cache = tmp_path / "scores.json"
    result = bench("search.py", "--n", "6", "--k", "2", "--seeds", "3", "--pool", "10", "--probe", "8",
                   "--proxies", "params", "synflow", "--jobs", "1", cache=cache)
    assert result.returncode == 0, result.stderr
    rows = [line.split() for line in result.stdout.splitlines() if line.startswith(("params", "synflow"))]
    assert [(r[0], r[1], r[2]) for r in rows] == [("params", "6", "2"), ("synflow", "6", "2")]
    assert all(80 < float(r[3]) < 95 for r in rows)  # CIFAR-10 test accuracies of real NB201 winners
    assert "optimum 94.37" in result.stdout
    ceiling = re.search(r"cells: the best among the N averages ([\d.]+); a perfect ranker's winner ([\d.]+) \(k=2\)",
                        result.stdout)
    assert ceiling, result.stdout  # the whole space's ceiling of the protocol, from look-ups
    best, perfect = map(float, ceiling.groups())
    assert 80 < perfect <= best <= 94.37  # a winner is one of the N drawn; 94.37 is the space's best
