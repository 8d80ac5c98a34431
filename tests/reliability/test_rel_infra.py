"""The service's dependencies fail mid-job: the broker restarts empty, the database goes down, the API is killed.

Each test runs a real job on real workers, injects the fault while the job is in flight, and
checks that the job still ends `succeeded` with every candidate stored exactly once, that no
state went backwards, and what clients saw meanwhile.
"""
from __future__ import annotations

import re
import time

import httpx

from tests.reliability.checks import assert_complete
from tests.reliability.ledger import LEDGER
from tests.reliability.watchers import Poller, StateWatch
from tests.support.specs import tiny_spec
from tests.support.waiting import wait_for

# A job the API accepts (the test-only `tiny` dataset is a worker plug-in): ~0.3-0.8 s a candidate on the
# embedded digits, so two workers take several seconds over 24 of them.
DIGITS_JOB = {"space": "nats-tss", "dataset": "digits", "candidates": {"strategy": "random", "n": 24},
              "proxy": {"name": "mgm", "batch_size": 32}, "top_k": 2, "final": {"mode": "none"}}


def test_the_job_completes_after_the_broker_restarts_with_every_message_lost(stack):
    s = stack()
    workers = [s.start_worker("wa"), s.start_worker("wb")]
    s.wait_ready(*workers)
    job = s.create_job(tiny_spec(24, seed=201, epochs=8))
    with StateWatch(s.db_url, [job]):
        wait_for(lambda: (p := s.progress(job))["scored"] >= 4 and p["pending"] >= 8, 60, "scoring under way",
                 interval=0.02, context=s.logs)
        # SIGKILL, no persistence: queued chunks, the unacknowledged ones in flight, the queue bindings: all gone.
        s.redis.kill()
        LEDGER.fault("Redis SIGKILL mid-scoring, restarted empty")
        wait_for(lambda: all(re.search(r"(?i)connection to broker lost|cannot connect to redis", w.output())
                             for w in workers), 30, "both workers to notice the broker is gone", interval=0.05,
                 context=s.logs)
        s.redis.start()  # same port, empty
        assert s.wait_done(job, 150) == "succeeded"
    assert all(w.proc.poll() is None for w in workers), "a worker died instead of reconnecting"
    assert_complete(s.store, job, s.logs)


def test_the_job_completes_across_a_database_outage_and_the_api_answers_503_meanwhile(stack, pg_cluster):
    s = stack(db_url=pg_cluster.create_database("knas"))
    api = s.start_api()
    token = s.add_user("alice")
    workers = [s.start_worker("wa"), s.start_worker("wb")]
    s.wait_ready(*workers)
    job = s.create_job(tiny_spec(32, seed=202, epochs=8), owner="alice")
    with StateWatch(s.db_url, [job]) as watch:
        wait_for(lambda: (p := s.progress(job))["scored"] >= 4 and p["pending"] >= 12, 60, "scoring under way",
                 interval=0.02, context=s.logs)
        pg_cluster.stop("fast")  # every connection is cut; new ones are refused until it is back
        LEDGER.fault("PostgreSQL stopped mid-scoring, restarted")
        down_at = time.monotonic()

        with httpx.Client(base_url=api.url, timeout=30, headers={"Authorization": f"Bearer {token}"}) as http:
            answers = [http.get(f"/v1/jobs/{job}"), http.get("/v1/jobs"), http.get("/v1/workers"),
                       http.get(f"/v1/jobs/{job}/candidates"), http.post(f"/v1/jobs/{job}/cancel"),
                       http.post("/v1/jobs", json={**DIGITS_JOB, "seed": 1})]
            health = http.get("/healthz")
        for response in answers:
            LEDGER.http[f"{response.status_code // 100}xx"] += 1
            assert response.status_code == 503, (response.request.url, response.text)
            body = response.json()
            assert body["status"] == 503 and body["detail"].startswith("the database is unavailable, try again later")
            assert "Traceback" not in response.text and "File \"" not in response.text
        assert health.status_code == 503 and health.json()["database"].startswith("unavailable")

        # The workers hit the outage and Celery retries their tasks with back-off; the database stays down
        # until one task has been retried three times (0-7 s of waiting by then), so the back-off is exercised.
        wait_for(lambda: max(map(len, retries(workers).values()), default=0) >= 3, 60,
                 "a task to retry three times", interval=0.05, context=s.logs)
        down_for = time.monotonic() - down_at
        pg_cluster.start()
        assert s.wait_done(job, 150) == "succeeded"
        with httpx.Client(base_url=api.url, timeout=30, headers={"Authorization": f"Bearer {token}"}) as http:
            again = http.get(f"/v1/jobs/{job}")
        assert again.status_code == 200 and again.json()["status"] == "succeeded"  # the API's pool recovered
    assert_complete(s.store, job, s.logs)
    delays = retries(workers)
    longest = max(delays.values(), key=len)
    # Celery's full jitter: retry n waits a random 0..2**n s (capped at a minute), so the waits need not grow
    # one by one; each stays under its exponential ceiling (the default retry delay, 180 s, would not).
    assert all(0 <= wait <= min(60, 2 ** n) for n, wait in enumerate(longest)), longest
    assert watch.read_errors >= 1 and all(w.proc.poll() is None for w in workers)
    total = sum(map(len, delays.values()))
    LEDGER.notes.append(f"database down {down_for:.1f} s: {total} task retries, back-off "
                        f"{', '.join(f'{d:.1f}' for d in longest)} s for one task; job succeeded")


RETRY = re.compile(r"^\[([0-9-]+ [0-9:,]+): [^]]*\] Task knas\.\w+\[([0-9a-f-]+)\] retry: Retry in ([0-9.]+)s", re.M)


def retries(workers) -> dict[str, list[float]]:
    """Task id -> the back-off delays Celery logged for it, in time order across the workers (a retried
    task may run on either)."""
    lines = sorted(match for w in workers for match in RETRY.findall(w.output()))
    found: dict[str, list[float]] = {}
    for _when, task_id, delay in lines:
        found.setdefault(task_id, []).append(float(delay))
    return found


def test_clients_polling_through_an_api_restart_just_see_progress_continue(stack):
    s = stack()
    api = s.start_api()
    token = s.add_user("alice")
    workers = [s.start_worker("wa"), s.start_worker("wb")]
    s.wait_ready(*workers)
    headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": "restart-test-1"}
    with httpx.Client(base_url=api.url, timeout=30, headers=headers) as http:
        submitted = http.post("/v1/jobs", json={**DIGITS_JOB, "seed": 203})
    assert submitted.status_code == 202, submitted.text
    job = submitted.json()["id"]
    poller = Poller(api.url, token, job, interval=0.1)
    with StateWatch(s.db_url, [job]) as watch:
        poller.start()
        wait_for(lambda: s.progress(job)["scored"] >= 2, 60, "scoring under way", interval=0.02, context=s.logs)
        wait_for(lambda: poller.answers, 10, "the poller's first answer", interval=0.05)
        last_before = poller.answers[-1][1]
        api.kill()  # SIGKILL: no shutdown code runs
        answered_before = len(poller.answers)
        LEDGER.fault("API SIGKILL mid-job, restarted")
        refused_before = poller.refused
        wait_for(lambda: poller.refused > refused_before, 10, "the poller to find the API gone", interval=0.05)
        api.start()  # the same port, as a supervisor would restart it
        poller.join(150)
        assert not poller.is_alive(), f"the poller did not see the job end\n{s.logs()}"
        with httpx.Client(base_url=api.url, timeout=30, headers=headers) as http:
            replay = http.post("/v1/jobs", json={**DIGITS_JOB, "seed": 203})  # the client retrying its POST
    poller.stop()
    assert replay.status_code == 202 and replay.json()["id"] == job and replay.headers["idempotent-replayed"] == "true"
    codes = {code for code, _ in poller.answers}
    assert codes == {200}, [a for a in poller.answers if a[0] != 200]
    seen = [body["progress"]["scored"] for _, body in poller.answers]
    assert seen == sorted(seen), "progress went backwards for a polling client"
    statuses = [body["status"] for _, body in poller.answers]
    assert statuses[-1] == "succeeded" and poller.refused > 0
    after = [b for _, b in poller.answers[answered_before:]]
    assert last_before["status"] not in ("succeeded", "failed", "cancelled") and after
    assert after[0]["progress"]["scored"] >= last_before["progress"]["scored"]  # it went on while the API was down
    assert_complete(s.store, job, s.logs)
    assert watch.seen[job][-1] == "succeeded"
