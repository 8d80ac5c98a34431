"""deploy/slurm/knas-worker.sbatch and `knas worker --gpus auto`, without Slurm or GPUs.

The batch script is run by bash exactly as Slurm would run it on a node (Slurm's variables set by
hand, since this machine has no Slurm and no GPU), with `--dry-run` so that `knas worker` prints the
per-GPU worker processes instead of starting them.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import click
import pytest

from knas.cli.worker_cmd import gpus_from_env, parse_gpus, plan_workers
from tests.support.paths import REPO

SBATCH = REPO / "deploy" / "slurm" / "knas-worker.sbatch"


def test_auto_takes_the_gpus_the_scheduler_gave_us(monkeypatch):
    assert gpus_from_env({"CUDA_VISIBLE_DEVICES": "2,3"}) == "2,3"
    assert gpus_from_env({"SLURM_JOB_GPUS": "1"}) == "1"
    assert gpus_from_env({"CUDA_VISIBLE_DEVICES": "", "SLURM_STEP_GPUS": "4,5", "SLURM_JOB_GPUS": "9"}) == "4,5"
    with pytest.raises(click.BadParameter, match="found no GPUs"):
        gpus_from_env({"CUDA_VISIBLE_DEVICES": "NoDevFiles"})
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "GPU-8f1c2d3e-aaaa-bbbb-cccc-0123456789ab,GPU-11112222-aaaa")
    plans = plan_workers(gpus="auto", host="n1", cores=8)
    assert [p.name for p in plans] == ["gpu0@n1", "gpu1@n1"]  # UUIDs pin the device, positions name it
    assert plans[0].env["CUDA_VISIBLE_DEVICES"].startswith("GPU-8f1c")
    with pytest.raises(click.BadParameter):
        parse_gpus("0,0")


def run_batch_script(tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True, exist_ok=True)
    # The knas the script finds in KNAS_VENV: this checkout's, run by this Python.
    (venv / "bin" / "knas").write_text(f"#!/bin/sh\nexec {sys.executable} -m knas.cli.main \"$@\"\n")
    (venv / "bin" / "knas").chmod(0o755)
    base = {k: v for k, v in os.environ.items() if not k.startswith(("KNAS_", "SLURM_", "CUDA_"))}
    base.update(HOME=str(tmp_path), KNAS_VENV=str(venv), PYTHONPATH=str(REPO), SLURM_JOB_ID="4242",
                KNAS_WORKER_ARGS="--dry-run")
    base.update(env)
    return subprocess.run(["bash", str(SBATCH)], env=base, cwd=tmp_path, capture_output=True, text=True, timeout=120)


def test_the_batch_script_starts_one_pinned_worker_per_allocated_gpu(tmp_path):
    env_file = tmp_path / "worker.env"
    env_file.write_text("KNAS_DATABASE_URL=postgresql+psycopg://knas:secret@labhost:5432/knas\n"
                        "KNAS_BROKER_URL=redis://:secret@labhost:6379/0\n")
    env_file.chmod(0o600)
    result = run_batch_script(tmp_path, KNAS_ENV_FILE=str(env_file), CUDA_VISIBLE_DEVICES="1,3")
    assert result.returncode == 0, result.stderr
    plans = [line for line in result.stdout.splitlines() if line.startswith("would start")]
    assert len(plans) == 2
    for plan, gpu in zip(plans, ("1", "3")):
        assert f"slurm4242-gpu{gpu}@" in plan and f"CUDA_VISIBLE_DEVICES={gpu} KNAS_DEVICE=cuda" in plan
    assert "Slurm job 4242" in result.stdout and "secret" not in result.stdout + result.stderr


def test_the_batch_script_says_what_is_missing(tmp_path):
    no_db = run_batch_script(tmp_path, CUDA_VISIBLE_DEVICES="0")
    assert no_db.returncode != 0 and "set KNAS_DATABASE_URL" in no_db.stderr
    no_gpu = run_batch_script(tmp_path, KNAS_DATABASE_URL="postgresql+psycopg://h/k", KNAS_BROKER_URL="redis://h")
    assert no_gpu.returncode != 0 and "'auto' found no GPUs" in no_gpu.stderr
