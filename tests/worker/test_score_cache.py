"""The lab-wide score cache and the progress counters, on the embedded store and on PostgreSQL."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from sqlalchemy import select

import scorer
from knas.jobspec import JobSpec
from models import Candidate, Job, Store
from models.queries import progress, recount
from worker import jobs, pipeline, runner, score_cache
from worker.runtime import Runtime

pytestmark = pytest.mark.slow  # whole jobs, end to end: out of the fast lane (README.md)

SPEC = {"space": "nats-tss", "dataset": "tiny", "candidates": {"strategy": "random", "n": 6}, "seed": 3,
        "proxy": {"name": "ensemble", "batch_size": 8, "repeats": 2}, "top_k": 2, "final": {"mode": "train", "epochs": 1}}


@pytest.fixture(params=["sqlite", "postgres"])
def db(request):
    url = request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "pg_url")
    store = Store(url)
    yield store
    store.dispose()


@pytest.fixture
def forward_passes(monkeypatch):
    """Counts score_arch calls (each is a network built and run on the probe batch)."""
    calls = []
    real = scorer.score_arch

    def counting(*args, **kwargs):
        calls.append(args[1])
        return real(*args, **kwargs)

    monkeypatch.setattr(scorer, "score_arch", counting)
    return calls


def _run(store, spec: dict) -> str:
    job_id = jobs.create_job(store, JobSpec.model_validate(spec))
    assert runner.run_job(store, Runtime(device="cpu", worker_name="t"), job_id, chunk_size=4) == "succeeded"
    return job_id


def _scores(store, job_id):
    with store.session() as session:
        return [tuple(r) for r in session.execute(select(Candidate.arch, Candidate.score, Candidate.scores,
                                                         Candidate.score_std, Candidate.rank, Candidate.cached)
                                                  .where(Candidate.job_id == job_id).order_by(Candidate.arch))]


def test_a_repeated_job_reuses_every_score_without_a_forward_pass(db, forward_passes):
    first = _run(db, SPEC)
    assert len(forward_passes) == 12  # 6 candidates x 2 repeats
    forward_passes.clear()
    second = _run(db, {**SPEC, "top_k": 1})  # another top-k: the same scores are asked for
    assert forward_passes == []
    a, b = _scores(db, first), _scores(db, second)
    assert [r[:4] for r in a] == [r[:4] for r in b]  # identical scores, components and spread
    assert all(r[5] is False for r in a) and all(r[5] is True for r in b)
    assert score_cache.stats(db)["entries"] == 12 and score_cache.stats(db)["hits"] == 12
    with db.session() as session:
        assert session.get(Job, second).result["compute_seconds"]["scoring"] == 0.0


@pytest.mark.parametrize("change", [
    {"proxy": {"name": "ensemble", "batch_size": 16, "repeats": 2}},  # probe size
    {"seed": 4, "candidates": {"strategy": "list", "archs": []}},  # seed (same archs, listed below)
])
def test_a_changed_input_misses(store, forward_passes, change):
    first = _run(store, SPEC)
    archs = [r[0] for r in _scores(store, first)]
    forward_passes.clear()
    spec = {**SPEC, **change}
    if spec["candidates"]["strategy"] == "list":
        spec["candidates"] = {"strategy": "list", "archs": archs}
    _run(store, spec)
    assert len(forward_passes) == 12


def test_the_key_changes_with_every_input():
    base = dict(space="nats-tss", arch="a", data="folder:abc", probe_size=8, probe_seed=1, init_seed=2, repeat=0,
                proxy="mgm", versions={"mgm": 1}, scorer_version="0.1.0", device="cpu")
    reference = score_cache.key(**base)
    for field, other in [("data", "folder:abd"), ("probe_size", 16), ("probe_seed", 2), ("init_seed", 3), ("repeat", 1),
                         ("proxy", "zico"), ("versions", {"mgm": 2}), ("scorer_version", "0.2.0"), ("device", "cuda:1"),
                         ("space", "nats-sss"), ("arch", "b")]:
        assert score_cache.key(**{**base, field: other}) != reference, field
    assert score_cache.key(**{**base, "device": "cpu"}) == reference


def test_a_job_can_opt_out(store, forward_passes):
    _run(store, SPEC)
    forward_passes.clear()
    spec = {**SPEC, "proxy": {**SPEC["proxy"], "cache": False}}
    job = _run(store, spec)
    assert len(forward_passes) == 12 and all(r[5] is False for r in _scores(store, job))


def test_counters_equal_a_recount_at_every_stage(db):
    job_id = jobs.create_job(db, JobSpec.model_validate(SPEC))
    runtime = Runtime(device="cpu", worker_name="t")
    chunks = pipeline.start_job(db, job_id, 4)
    with db.session() as session:
        assert progress(session, job_id) == recount(session, job_id)
    pipeline.score_chunk(db, runtime, job_id, chunks[0])
    pipeline.score_chunk(db, runtime, job_id, chunks[0])  # redelivered: nothing counted twice
    with db.session() as session:
        assert progress(session, job_id) == recount(session, job_id) and progress(session, job_id)["scored"] == 4
    pipeline.score_chunk(db, runtime, job_id, chunks[1])
    for candidate_id in pipeline.rank(db, job_id):
        with db.session() as session:
            assert progress(session, job_id) == recount(session, job_id)
        pipeline.train_candidate(db, runtime, job_id, candidate_id)
        pipeline.train_candidate(db, runtime, job_id, candidate_id)  # redelivered
    with db.session() as session:
        assert progress(session, job_id) == recount(session, job_id) == {
            "candidates": 6, "scored": 6, "failed": 0, "pending": 0, "trained": 2, "training": 0, "training_failed": 0}


def test_knas_cache_stats_and_clear(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("KNAS_")}
    env.update(KNAS_HOME=str(tmp_path / "home"), OMP_NUM_THREADS="1")

    def knas(*args):
        done = subprocess.run([sys.executable, "-m", "knas.cli.main", *args], env=env, capture_output=True, text=True,
                              timeout=300)
        assert done.returncode == 0, done.stderr
        return done.stdout

    knas("search", "--dataset", "digits", "--candidates", "3", "--proxy", "mgm", "--probe", "8", "--final", "none",
         "--top-k", "1")
    knas("search", "--dataset", "digits", "--candidates", "3", "--proxy", "mgm", "--probe", "8", "--final", "none",
         "--top-k", "2")
    figures = json.loads(knas("cache", "stats", "--json"))
    assert figures["entries"] == 3 and figures["hits"] == 3 and figures["per_proxy"] == {"mgm": 3}
    assert "deleted 3 entries" in knas("cache", "clear", "--yes")
    assert json.loads(knas("cache", "stats", "--json"))["entries"] == 0
