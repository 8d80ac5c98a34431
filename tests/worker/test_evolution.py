"""Evolutionary search as a candidate strategy: generations bred from the scores, under a budget,
the same candidates and winner in-process and on two Celery workers (PostgreSQL + Redis)."""
from __future__ import annotations

import random

import pytest
from sqlalchemy import select

from knas.jobspec import JobSpec
from models import Candidate, Job, Store
from scorer.evolution import breed, crossover, mutate, population
from scorer.spaces import get_space
from worker import jobs, runner
from worker.runtime import Runtime

pytestmark = pytest.mark.slow  # whole jobs, end to end: out of the fast lane (README.md)

SPEC = {"space": "nats-tss", "dataset": "tiny", "seed": 21, "top_k": 2, "final": {"mode": "none"},
        "proxy": {"name": "synflow", "batch_size": 8},
        "candidates": {"strategy": "evolution", "population": 6, "generations": 3, "children": 4, "tournament": 3,
                       "crossover": 0.5}}


def _candidates(store: Store, job_id: str) -> list[tuple]:
    with store.session() as session:
        return [tuple(row) for row in session.execute(
            select(Candidate.arch, Candidate.generation, Candidate.parents, Candidate.score, Candidate.rank)
            .where(Candidate.job_id == job_id).order_by(Candidate.generation, Candidate.arch)).all()]


def _run_local(store: Store, spec: dict) -> str:
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the workers run: the same sums, so the same scores to the last bit
    try:
        job_id = jobs.create_job(store, JobSpec.model_validate(spec))
        assert runner.run_job(store, Runtime(device="cpu", worker_name="local"), job_id, chunk_size=2) == "succeeded"
        return job_id
    finally:
        torch.set_num_threads(threads)


def test_generations_are_bred_from_the_fittest_and_are_new(store):
    job_id = _run_local(store, SPEC)
    rows = _candidates(store, job_id)
    by_generation = {g: [r for r in rows if r[1] == g] for g in range(4)}
    assert [len(by_generation[g]) for g in range(4)] == [6, 4, 4, 4]
    assert len({r[0] for r in rows}) == len(rows) == 18  # deduplicated against everything scored before
    with store.session() as session:
        ids = {c.id: (c.arch, c.generation) for c in session.scalars(select(Candidate).where(Candidate.job_id == job_id))}
        job = session.get(Job, job_id)
    assert job.generation == 3 and job.n_candidates == 18 and job.status == "succeeded"
    for _arch, generation, parents, _, _ in rows:
        if generation == 0:
            assert parents is None
        else:  # parents come from earlier generations, one (mutation) or two (crossover)
            assert 1 <= len(parents) <= 2 and all(ids[p][1] < generation for p in parents)
    assert sorted(r[4] for r in rows) == list(range(1, 19))  # every generation is ranked together


def test_the_same_spec_and_seed_give_the_same_candidates(tmp_path):
    first, second = (Store(f"sqlite:///{tmp_path / name}.db") for name in ("a", "b"))
    a, b = _run_local(first, SPEC), _run_local(second, SPEC)
    assert _candidates(first, a) == _candidates(second, b)
    other = _run_local(second, {**SPEC, "seed": 22})
    assert {r[0] for r in _candidates(second, other)} != {r[0] for r in _candidates(first, a)}


def test_bred_children_stay_within_the_budget(store):
    spec = {**SPEC, "space": "mbv2", "dataset": "tiny", "proxy": {"name": "params", "batch_size": 4},
            "candidates": {"strategy": "evolution", "population": 4, "generations": 2, "children": 3},
            "constraints": {"max_params": 200_000}}
    from scorer.data import DATASETS

    entry = DATASETS.info("tiny")
    job_id = _run_local(store, spec)
    space = get_space("mbv2")
    rows = _candidates(store, job_id)
    assert len(rows) == 10
    for arch, *_ in rows:
        params, _ = space.cost(arch, entry.num_classes, entry.in_shape)
        assert params <= 200_000, arch


def test_operators_are_deterministic_and_valid():
    space = get_space("mbv2")
    parents = space.sample(3, 8)
    fitness = {arch: float(i) for i, arch in enumerate(parents)}
    assert population(fitness, 3) == parents[::-1][:3]
    rng = random.Random(0)
    child = mutate(space, space.genes(parents[0]), rng, mutations=2)
    assert sum(x != y for x, y in zip(child, space.genes(parents[0]))) == 2
    mixed = crossover(space.genes(parents[0]), space.genes(parents[1]), rng)
    assert all(m in (x, y) for m, x, y in zip(mixed, space.genes(parents[0]), space.genes(parents[1])))
    kids = [breed(space, fitness, set(parents), children=5, population_size=4, tournament_size=2,
                  rng=random.Random(7), crossover_rate=0.5) for _ in range(2)]
    assert kids[0] == kids[1] and len(kids[0]) == 5
    assert all(space.validate(k.arch) == k.arch and k.arch not in parents for k in kids[0])
    assert all(set(k.parents) <= set(population(fitness, 4)) for k in kids[0])


@pytest.mark.parametrize("candidates, message", [
    ({"strategy": "evolution", "population": 0}, "population"),
    ({"strategy": "evolution", "generations": 100_000}, "generations"),
    ({"strategy": "evolution", "population": 10_000, "generations": 1_000}, "more than"),
])
def test_bad_evolution_specs_name_the_field(candidates, message):
    with pytest.raises(ValueError, match=message):
        JobSpec.model_validate({**SPEC, "candidates": candidates})


def test_two_celery_workers_breed_the_same_generations_as_one_process(pg_url, redis_url, start_worker, tmp_path):
    from tests.support.workers import submit_job, wait_for_rows, wait_jobs_done, worker_env

    local = Store(f"sqlite:///{tmp_path / 'local.db'}")
    expected = _candidates(local, _run_local(local, SPEC))
    store = Store(pg_url)
    workers = [start_worker(name) for name in ("wa", "wb")]
    wait_for_rows(store, {"wa", "wb"}, procs=workers)
    spec = JobSpec.model_validate(SPEC)
    job_id = jobs.create_job(store, spec)
    submit_job(job_id, spec.priority, worker_env(pg_url, redis_url, tmp_path / "home"))
    assert wait_jobs_done(store, [job_id], timeout=240, workers=workers) == {job_id: "succeeded"}
    remote = _candidates(store, job_id)
    assert [r[:2] for r in remote] == [r[:2] for r in expected]  # the same archs in the same generations
    assert [r[4] for r in remote] == [r[4] for r in expected]  # and the same ranking
    with store.session() as session:
        workers_used = set(session.scalars(select(Candidate.worker).where(Candidate.job_id == job_id)))
    assert len(workers_used) == 2, workers_used
    store.dispose()
