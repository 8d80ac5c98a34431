"""The `knas` command as a user runs it: a real process, the embedded store, one-line errors."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

INDEX_0 = "|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_1x1~0|skip_connect~1|skip_connect~2|"


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


def test_search_then_jobs_list_and_show(knas, tmp_path):
    out = knas("search", "--dataset", "digits", "--candidates", "4", "--top-k", "2", "--epochs", "1",
               "--probe", "8", "--seed", "1", "--json")
    job = json.loads(out.stdout)
    assert job["status"] == "succeeded"
    assert job["progress"]["scored"] == 4 and job["progress"]["trained"] == 2
    assert job["result"]["winner"]["arch"] in {e["arch"] for e in job["result"]["top_k"]}
    assert (tmp_path / "home" / "knas.db").exists()

    listed = json.loads(knas("jobs", "list", "--json").stdout)
    assert listed["count"] == 1 and listed["data"][0]["id"] == job["id"]
    shown = json.loads(knas("jobs", "show", job["id"][:8], "--candidates", "4", "--json").stdout)
    assert [c["rank"] for c in shown["candidates"]] == [1, 2, 3, 4]
    human = knas("jobs", "show", job["id"]).stdout
    assert "winner" in human and "succeeded" in human


def test_search_prints_ranked_table_and_winner(knas):
    out = knas("search", "--dataset", "digits", "--arch", INDEX_0, "--top-k", "1", "--final", "none",
               "--probe", "8").stdout
    assert "winner" in out and "top-k" in out and "15625" not in out


def test_search_with_repeats_reports_the_spread_and_the_cut(knas):
    out = knas("search", "--dataset", "digits", "--candidates", "6", "--top-k", "2", "--final", "none",
               "--probe", "8", "--proxy", "mgm", "--repeats", "2", "--json").stdout
    job = json.loads(out)
    assert job["spec"]["proxy"]["repeats"] == 2
    cut = job["result"]["cut"]
    assert cut["repeats"] == 2 and cut["kth_std"] > 0 and ("decisive" in cut["note"])
    assert all(entry["score_std"] is not None for entry in job["result"]["top_k"])
    shown = knas("jobs", "show", job["id"]).stdout
    assert "top-k cut:" in shown


def test_score_one_arch_with_several_proxies(knas):
    out = knas("score", "--arch", INDEX_0, "--dataset", "synthetic", "--probe", "8", "--proxy", "mgm",
               "--proxy", "params", "--json").stdout
    result = json.loads(out)
    assert result["index"] == 0 and result["scores"]["params"]["score"] == 129306
    assert result["scores"]["mgm"]["score"] > 0


def test_score_with_the_ensemble_shows_its_components(knas):
    out = knas("score", "--arch", INDEX_0, "--dataset", "synthetic", "--probe", "8", "--proxy", "ensemble").stdout
    assert "mgm:" in out and "zico:" in out and "whole candidate set" in out


@pytest.mark.parametrize("args, message", [
    (["search", "--space", "darts"], "unknown search space 'darts'"),
    (["search", "--candidates", "99999"], "larger than nats-tss"),
    (["search", "--proxy", "nope", "--candidates", "2", "--top-k", "1"], "unknown proxy 'nope'"),
    (["search", "--dataset", "cifar10", "--candidates", "2", "--top-k", "1"], "KNAS_DATA_DIR"),
    (["score", "--arch", "|x~0|"], "needs 3 nodes"),
    (["jobs", "show", "does-not-exist"], "no job 'does-not-exist'"),
])
def test_bad_arguments_fail_with_one_clear_line(knas, args, message):
    result = knas(*args, check=False)
    assert result.returncode != 0
    assert message in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_listing_commands(knas):
    assert "nats-tss" in knas("spaces").stdout
    assert "mgm" in knas("proxies").stdout
    assert "digits" in knas("datasets").stdout
