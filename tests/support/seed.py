"""Fill a store with many finished jobs, or one job of every nats-tss cell, without running anything.

Only final states are written, so a server started on the store has nothing to resume.
"""
from __future__ import annotations

import random
from datetime import timedelta
from typing import Any

from sqlalchemy import insert, text

from models import Candidate, Job, Store, Training, new_id, utcnow
from scorer.spaces import get_space

FINAL = ("succeeded", "failed", "cancelled")

# Rows written here bypass the pipeline, which keeps the jobs' progress counters: count them once.
COUNT = text("UPDATE jobs SET "
             "candidates_total = (SELECT count(*) FROM candidates c WHERE c.job_id = jobs.id), "
             "candidates_scored = (SELECT count(*) FROM candidates c WHERE c.job_id = jobs.id AND c.status = 'scored'), "
             "candidates_failed = (SELECT count(*) FROM candidates c WHERE c.job_id = jobs.id AND c.status = 'failed'), "
             "trainings_total = (SELECT count(*) FROM trainings t WHERE t.job_id = jobs.id AND t.mode != 'retrain'), "
             "trainings_done = (SELECT count(*) FROM trainings t WHERE t.job_id = jobs.id AND t.mode != 'retrain' "
             "AND t.status = 'done'), "
             "trainings_failed = (SELECT count(*) FROM trainings t WHERE t.job_id = jobs.id AND t.mode != 'retrain' "
             "AND t.status = 'failed')")


def _job_row(owner: str, status: str, n: int, created, **extra: Any) -> dict[str, Any]:
    spec = {"space": "nats-tss", "dataset": "digits", "candidates": {"strategy": "random", "n": n},
            "proxy": {"name": "mgm", "batch_size": 8, "options": {}}, "seed": 0, "top_k": min(2, n),
            "final": {"mode": "none"}, "priority": 0}
    return {"id": new_id(), "owner": owner, "status": status, "priority": 0, "spec": spec, "space": "nats-tss",
            "dataset": "digits", "proxy": "mgm", "n_candidates": n, "top_k": min(2, n), "created_at": created,
            "updated_at": created, "finished_at": created, "timings": {}, **extra}


def seed_jobs(store: Store, n: int, owner: str, candidates_each: int = 2, seed: int = 0) -> dict[str, int]:
    """`n` finished jobs of `owner`, one a minute apart, each with a few candidates; returns jobs per status."""
    rng = random.Random(seed)
    space = get_space("nats-tss")
    now = utcnow()
    jobs, candidates, per_status = [], [], {s: 0 for s in FINAL}
    for i in range(n):
        status = FINAL[rng.randrange(3)]
        per_status[status] += 1
        job = _job_row(owner, status, candidates_each, now - timedelta(minutes=i))
        jobs.append(job)
        for j, index in enumerate(rng.sample(range(space.size), candidates_each)):
            scored = status == "succeeded" or j == 0
            candidates.append({"job_id": job["id"], "arch": space.arch(index), "arch_index": index, "seed": index,
                               "status": "scored" if scored else "pending",
                               "score": rng.random() if scored else None})
    with store.session() as session:
        session.execute(insert(Job), jobs)
        session.execute(insert(Candidate), candidates)
        session.execute(COUNT)
    return per_status


def seed_big_job(store: Store, owner: str, seed: int = 0) -> tuple[str, list[float]]:
    """One succeeded job over all 15,625 nats-tss cells, scores log-normal, ranked; returns (id, scores)."""
    rng = random.Random(seed)
    space = get_space("nats-tss")
    scores = [rng.lognormvariate(3, 2) for _ in range(space.size)]
    order = sorted(range(space.size), key=lambda i: (-scores[i], i))
    rank = {index: r + 1 for r, index in enumerate(order)}
    job = _job_row(owner, "succeeded", space.size, utcnow(), result={"winner": None})
    rows = [{"job_id": job["id"], "arch": space.arch(i), "arch_index": i, "seed": i, "status": "scored",
             "score": scores[i], "scores": {"mgm": scores[i]}, "params": 1000 + i, "rank": rank[i]}
            for i in range(space.size)]
    with store.session() as session:
        session.execute(insert(Job), [job])
        session.execute(insert(Candidate), rows)
        session.execute(COUNT)
    return job["id"], scores


def seed_trained_job(store: Store, owner: str, accuracies: list[float]) -> tuple[str, list[dict[str, Any]]]:
    """A succeeded job whose top candidates were trained for len(epochs) epochs; returns (id, candidates)."""
    space = get_space("nats-tss")
    job = _job_row(owner, "succeeded", len(accuracies) + 2, utcnow())
    job["top_k"] = len(accuracies)
    with store.session() as session:
        session.execute(insert(Job), [job])
        made = []
        for r in range(len(accuracies) + 2):
            c = Candidate(job_id=job["id"], arch=space.arch(r * 7), arch_index=r * 7, seed=r, status="scored",
                          score=10.0 - r, scores={"mgm": 10.0 - r, "params": 100 + r}, params=100 + r, rank=r + 1)
            session.add(c)
            session.flush()
            made.append({"id": c.id, "rank": c.rank, "score": c.score, "arch": c.arch})
            if r < len(accuracies):
                epochs = [{"epoch": e + 1, "train_loss": 2.0 / (e + 1), "train_acc": accuracies[r] - 5 + e,
                           "valid_loss": 2.1 / (e + 1), "valid_acc": accuracies[r] - 2 + e, "lr": 0.1, "seconds": 1.0}
                          for e in range(3)]
                session.add(Training(job_id=job["id"], candidate_id=c.id, mode="train", status="done",
                                     epochs=epochs, valid_acc=epochs[-1]["valid_acc"], test_acc=accuracies[r],
                                     seconds=3.0, worker="test", attempts=1))
                made[-1]["valid_acc"] = epochs[-1]["valid_acc"]
        session.flush()
        session.execute(COUNT)
    return job["id"], made
