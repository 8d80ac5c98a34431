"""Real Celery workers (subprocesses) on real PostgreSQL + Redis run a job end to end."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from conftest import PLUGIN_PATH, REPO
from knas.jobspec import JobSpec
from models import Candidate, Job, Store, Worker
from worker import pipeline

SPEC = {"space": "nats-tss", "dataset": "tiny", "candidates": {"strategy": "random", "n": 8},
        "proxy": {"name": "mgm", "batch_size": 8}, "seed": 11, "top_k": 2, "final": {"mode": "train", "epochs": 1}}


def worker_env(pg_url: str, redis_url: str, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KNAS_")}
    env.update(KNAS_DATABASE_URL=pg_url, KNAS_BROKER_URL=redis_url, KNAS_CHUNK_SIZE="2",
               KNAS_PLUGINS="tiny_dataset", KNAS_SWEEP_INTERVAL="2", KNAS_DEVICE="cpu",
               PYTHONPATH=os.pathsep.join([PLUGIN_PATH, str(REPO)]), OMP_NUM_THREADS="1", **extra)
    return env


@pytest.fixture
def start_workers(pg_url, redis_url, tmp_path):
    procs: list[subprocess.Popen] = []

    def start(*names: str, **extra: str) -> list[subprocess.Popen]:
        Store(pg_url).dispose()  # migrate before workers race to do it
        for name in names:
            log = open(tmp_path / f"{name}.log", "w")
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "knas.cli.main", "worker", "--device", "cpu", "--name", name],
                env=worker_env(pg_url, redis_url, **extra), stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True))
        return procs

    yield start
    for proc in procs:
        if proc.poll() is None:
            os.killpg(proc.pid, 15)
    for proc in procs:
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)


def wait_for(store: Store, job_id: str, states=("succeeded", "failed", "cancelled"), timeout=240) -> str:
    deadline = time.time() + timeout
    while time.time() < deadline:
        status = pipeline.job_status(store, job_id)
        if status in states:
            return status
        time.sleep(0.5)
    raise AssertionError(f"job {job_id} still {status!r} after {timeout} s")


def test_two_workers_finish_a_job_with_the_local_ranking(pg_url, redis_url, start_workers, tmp_path, monkeypatch):
    monkeypatch.setenv("KNAS_BROKER_URL", redis_url)
    from worker.celery_app import app

    app.conf.broker_url = redis_url
    start_workers("w1", "w2")
    store = Store(pg_url)
    spec = JobSpec.model_validate(SPEC)
    job_id = pipeline.create_job(store, spec)
    app.send_task("knas.start_job", args=[job_id])
    assert wait_for(store, job_id) == "succeeded", (tmp_path / "w1.log").read_text()[-3000:]

    with store.session() as s:
        rows = s.execute(select(Candidate.arch, Candidate.score, Candidate.rank, Candidate.worker)
                         .where(Candidate.job_id == job_id)).all()
        per_arch = dict(s.execute(select(Candidate.arch, func.count()).where(Candidate.job_id == job_id)
                                  .group_by(Candidate.arch)).all())
        result = s.get(Job, job_id).result
        workers = s.scalars(select(Worker.name)).all()
    assert len(rows) == 8 and set(per_arch.values()) == {1}  # each candidate stored exactly once
    assert all(score is not None for _, score, _, _ in rows)
    assert {w.split("@")[0] for w in workers} == {"w1", "w2"}  # both heartbeat into the workers table

    # The same spec run in-process on SQLite ranks identically.
    from worker.runtime import Runtime

    local = Store(f"sqlite:///{tmp_path / 'local.db'}")
    local_id = pipeline.create_job(local, spec)
    pipeline.run_job(local, Runtime(device="cpu"), local_id)
    with local.session() as s:
        local_rows = {a: (sc, r) for a, sc, r in s.execute(
            select(Candidate.arch, Candidate.score, Candidate.rank).where(Candidate.job_id == local_id)).all()}
    for arch, score, rank, _ in rows:
        assert rank == local_rows[arch][1]
        assert score == pytest.approx(local_rows[arch][0], rel=1e-5)
    assert result["winner"]["arch"] in {e["arch"] for e in result["top_k"]}
    store.dispose()
    local.dispose()
