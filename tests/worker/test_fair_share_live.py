"""Fair share and priorities on a real Celery worker (Redis broker, PostgreSQL store).

One worker process with one slot, chunks of one candidate: the order in which candidates get
their `scored_at` is the order in which the broker handed out the work.
"""
from __future__ import annotations


from sqlalchemy import select

from knas.jobspec import JobSpec
from knas.settings import Settings
from models import Candidate, Job, Store
from worker import jobs
from api.dispatch import CeleryQueue

from tests.support.specs import job_spec
from tests.support.waiting import wait_for
from tests.support.workers import wait_for_rows, wait_jobs_done

WINDOW = 2  # KNAS_FANOUT_WINDOW: chunks of one job in the queue at once


def params_job(n: int, seed: int, priority: int = 0) -> JobSpec:
    """`n` tiny-dataset candidates scored by `params` (instant), nothing trained."""
    return JobSpec.model_validate(job_spec(n, seed=seed, dataset="tiny", proxy="params", priority=priority))


def scoring_order(store: Store, job_ids: list[str]) -> list[str]:
    """The owner of each scored candidate, in the order they were scored."""
    with store.session() as s:
        return list(s.scalars(select(Job.owner).join(Candidate, Candidate.job_id == Job.id)
                              .where(Job.id.in_(job_ids), Candidate.scored_at.is_not(None))
                              .order_by(Candidate.scored_at, Candidate.id)))


def longest_run(owners: list[str]) -> int:
    best = run = 0
    for i, owner in enumerate(owners):
        run = run + 1 if i and owner == owners[i - 1] else 1
        best = max(best, run)
    return best


def test_two_users_jobs_alternate_instead_of_one_draining_first(pg_url, redis_url, start_worker):
    store = Store(pg_url)
    queue = CeleryQueue(Settings(broker_url=redis_url))
    bulk = jobs.create_job(store, params_job(12, seed=1), owner="alice")  # alice's big job first...
    small = jobs.create_job(store, params_job(8, seed=2), owner="bob")  # ... then bob's, same priority
    for job_id in (bulk, small):
        queue.submit(job_id, 0)
    worker = start_worker("fair", "--concurrency", "1", KNAS_CHUNK_SIZE="1", KNAS_FANOUT_WINDOW=str(WINDOW))
    wait_jobs_done(store, [bulk, small], timeout=120, workers=[worker])

    order = scoring_order(store, [bulk, small])
    assert len(order) == 20
    # Turns of one window each (AABBAABB...), instead of alice's 12 candidates before bob's first;
    # bob's 8 are done within the first 16, then alice's remaining 4 run.
    assert order.index("bob") <= WINDOW, order
    assert longest_run(order[:16]) <= WINDOW, order
    assert order[:16].count("bob") == 8, order
    store.dispose()


def test_a_high_priority_job_overtakes_a_bulk_job_already_running(pg_url, redis_url, start_worker):
    store = Store(pg_url)
    queue = CeleryQueue(Settings(broker_url=redis_url))
    worker = start_worker("prio", "--concurrency", "1", KNAS_CHUNK_SIZE="1", KNAS_FANOUT_WINDOW=str(WINDOW))
    wait_for_rows(store, {"prio"}, procs=[worker])
    bulk = jobs.create_job(store, params_job(40, seed=3, priority=0), owner="alice")
    queue.submit(bulk, 0)
    wait_for(lambda: len(scoring_order(store, [bulk])) >= 3, 60, "the bulk job to be under way", interval=0.1,
             context=lambda: worker.output()[-3000:])
    urgent = jobs.create_job(store, params_job(6, seed=4, priority=9), owner="bob")
    queue.submit(urgent, 9)
    wait_jobs_done(store, [bulk, urgent], timeout=120, workers=[worker])

    order = scoring_order(store, [bulk, urgent])
    first, last = order.index("bob"), len(order) - 1 - order[::-1].index("bob")
    # Once bob's job was picked up, its 6 candidates ran back to back, ahead of alice's queued work
    # (at most the one chunk the worker had already taken runs in between)...
    assert order[first : last + 1].count("alice") <= 1, order
    # ... and long before alice's job was done.
    assert order[last + 1 :].count("alice") >= 20, order
    store.dispose()
