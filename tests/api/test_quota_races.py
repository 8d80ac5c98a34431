"""max-jobs is exact when one user's POSTs race each other, on PostgreSQL and on SQLite (issue 14, finding 2)."""
from __future__ import annotations

import threading
import uuid

import httpx

from tests.support.specs import job_spec


def unique(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:6]}"


def race(url: str, token: str, spec: dict, n: int = 8) -> list[httpx.Response]:
    """`n` POSTs of `spec` released at the same instant."""
    answers: list[httpx.Response] = []
    barrier = threading.Barrier(n)

    def post(seed: int) -> None:
        with httpx.Client(base_url=url, timeout=60, headers={"Authorization": f"Bearer {token}"}) as http:
            barrier.wait()
            answers.append(http.post("/v1/jobs", json={**spec, "seed": seed}))

    threads = [threading.Thread(target=post, args=(seed,)) for seed in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(90)
    return answers


def _exactly_one(server, spec: dict, rounds: int) -> None:
    token = server.add_user(unique("olga"), max_jobs=1)
    for _ in range(rounds):
        answers = race(server.url, token, spec)
        codes = sorted(a.status_code for a in answers)
        assert codes == [202] + [429] * 7, [a.text for a in answers]
        with httpx.Client(base_url=server.url, timeout=30, headers={"Authorization": f"Bearer {token}"}) as http:
            (made,) = [a.json()["id"] for a in answers if a.status_code == 202]
            assert http.get("/v1/jobs", params={"status": "queued"}).json()["count"] + \
                http.get("/v1/jobs", params={"status": "scoring"}).json()["count"] <= 1
            assert http.post(f"/v1/jobs/{made}/cancel").status_code == 202  # free the quota for the next round


def test_max_jobs_is_exact_under_concurrent_posts_on_postgres(start_server, tmp_path, pg_url, redis_url):
    server = start_server(KNAS_HOME=str(tmp_path / "home"), KNAS_DATABASE_URL=pg_url, KNAS_BROKER_URL=redis_url)
    _exactly_one(server, job_spec(n=3), rounds=3)  # no worker: jobs stay queued


def test_max_jobs_is_exact_under_concurrent_posts_on_sqlite(start_server, tmp_path):
    server = start_server(KNAS_HOME=str(tmp_path / "home"))
    # Big enough to be still running (in the server's own thread) while the race is decided.
    _exactly_one(server, job_spec(n=400, probe=8), rounds=3)
