"""/v1/jobs over HTTP (the app in this process; `knas serve` for the outage): submit, follow, rank, export, cancel, refuse."""
from __future__ import annotations

import csv
import io
import time
import uuid

import httpx
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from knas.client import KnasClientError
from tests.support.specs import job_spec
from tests.support.waiting import wait_for

INDEX_0 = "|avg_pool_3x3~0|+|nor_conv_1x1~0|skip_connect~1|+|nor_conv_1x1~0|skip_connect~1|skip_connect~2|"


def run_tiny_job(server, spec) -> dict:
    """POST, check the 202 answer, poll to the end; returns the finished job."""
    with httpx.Client(base_url=server.url, timeout=30, headers=server.auth) as http:
        response = http.post("/v1/jobs", json=spec)
        assert response.status_code == 202, response.text
        job = response.json()
        assert response.headers["location"] == f"/v1/jobs/{job['id']}"
        assert job["status"] in ("queued", "scoring") and job["progress"]["candidates"] == spec["candidates"]["n"]
        assert http.get(response.headers["location"]).json()["id"] == job["id"]
    with server.client() as client:
        return client.wait(job["id"], timeout=120, interval=0.3)


def check_finished(server, job: dict) -> None:
    """A succeeded job: ranks 1..n over the JSON and the CSV export, same order, and a winner."""
    n = job["n_candidates"]
    assert job["status"] == "succeeded", job
    assert job["progress"]["scored"] == n and job["progress"]["pending"] == 0
    assert job["finished_at"] and job["timings"]["scoring"]["seconds"] >= 0
    with httpx.Client(base_url=server.url, timeout=30, headers=server.auth) as http:
        ranked = http.get(f"/v1/jobs/{job['id']}/candidates").json()
        assert ranked["count"] == n
        assert [c["rank"] for c in ranked["data"]] == list(range(1, n + 1))
        scores = [c["score"] for c in ranked["data"]]
        assert scores == sorted(scores, reverse=True)

        exported = http.get(f"/v1/jobs/{job['id']}/candidates", params={"format": "csv"})
        assert exported.status_code == 200 and exported.headers["content-type"].startswith("text/csv")
        rows = list(csv.DictReader(io.StringIO(exported.text)))
        assert [int(r["rank"]) for r in rows] == list(range(1, n + 1))
        assert [r["arch"] for r in rows] == [c["arch"] for c in ranked["data"]]
        assert float(rows[0]["score"]) == pytest.approx(scores[0])

        page = http.get(f"/v1/jobs/{job['id']}/candidates", params={"limit": 1, "offset": 1}).json()
        assert [c["rank"] for c in page["data"]] == [2] and page["count"] == n
    winner = job["result"]["winner"]
    assert winner["rank"] == 1 and winner["arch"] == ranked["data"][0]["arch"]


def test_tiny_job_runs_to_success_on_the_embedded_server(embedded_server, finished_job):
    check_finished(embedded_server, finished_job)


def test_tiny_job_runs_to_success_on_postgres_and_an_outage_is_a_503(start_live_server, pg_url, tmp_path):
    pg_server = start_live_server(KNAS_HOME=str(tmp_path / "home"), KNAS_DATABASE_URL=pg_url)
    assert "database postgresql" in pg_server.log  # the start-up line says what it uses
    job = run_tiny_job(pg_server, job_spec(n=3, seed=3))
    check_finished(pg_server, job)

    # The database goes away under the running server: clear 503s, no stack traces.
    admin = create_engine(make_url(pg_url).set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE "{make_url(pg_url).database}" WITH (FORCE)'))
    admin.dispose()
    with httpx.Client(base_url=pg_server.url, timeout=30, headers=pg_server.auth) as http:
        for path in ("/v1/jobs", f"/v1/jobs/{job['id']}"):
            response = http.get(path)
            assert response.status_code == 503, response.text
            assert "database is unavailable" in response.json()["detail"]
            assert "Traceback" not in response.text
        health = http.get("/healthz")
        assert health.status_code == 503
        assert health.json()["database"].startswith("unavailable") and health.json()["status"] == "unavailable"


@pytest.mark.parametrize("body, where, message", [
    ({"space": "darts"}, ["body", "space"], "unknown search space 'darts'"),
    ({"proxy": {"name": "nope"}}, ["body", "proxy", "name"], "unknown proxy 'nope'"),
    ({"dataset": "mnist"}, ["body", "dataset"], "unknown dataset 'mnist'"),
    ({"candidates": {"strategy": "list", "archs": ["|x~0|"]}}, ["body"], "candidates.archs[0]"),
    ({"candidates": {"strategy": "list", "archs": [INDEX_0, INDEX_0]}}, ["body"], "repeats"),
    ({"candidates": {"strategy": "random", "n": 20000}}, ["body"], "larger than nats-tss, which has 15625"),
    ({"top_k": 5}, ["body"], "top_k=5 is larger than the 3 candidates"),
    ({"dataset": "cifar10"}, ["body", "dataset"], "'cifar10' is not present on this server"),
    ({"dataset": "cifar10", "final": {"mode": "benchmark"}}, ["body", "final", "mode"], "KNAS_BENCHMARK_DIR"),
    ({"final": {"mode": "benchmark"}}, ["body", "final", "mode"], "benchmark mode looks up"),
    ({"candidates": {"strategy": "random", "n": 501}}, ["body", "candidates"], "at most 500"),
    ({"candidates": {"strategy": "all"}}, ["body", "candidates"], "15625 candidates"),
    ({"proxy": {"name": "mgm", "batch_size": 129}}, ["body", "proxy", "batch_size"], "limit of 128"),
    ({"final": {"mode": "train", "epochs": 4}}, ["body", "final", "epochs"], "limit of 3"),
    ({"final": {"mode": "train", "epochs": 0}}, ["body", "final", "train", "epochs"], "greater than or equal to 1"),
    ({"candidates": {"strategy": "random", "n": "many"}}, ["body", "candidates", "random", "n"], "valid integer"),
    ({"candidates": {"strategy": "bogus"}}, ["body", "candidates"], "'random', 'all', 'list'"),
    ({"priority": 10}, ["body", "priority"], "less than or equal to 9"),
    ({"colour": "blue"}, ["body", "colour"], "Extra inputs are not permitted"),
], ids=lambda value: None if not isinstance(value, str) else value[:30])
def test_invalid_specs_are_refused_with_the_field_and_reason(http, body, where, message):
    response = http.post("/v1/jobs", json={**job_spec(n=3), **body})
    assert response.status_code == 422, response.text
    problem = response.json()
    assert message in problem["detail"]
    assert problem["status"] == 422 and problem["errors"][0]["loc"] == where
    assert all(e["loc"] and e["msg"] for e in problem["errors"])


@pytest.mark.parametrize("content, headers, status, message", [
    (b"{not json", {"content-type": "application/json"}, 422, "not valid JSON"),
    (b"hello", {"content-type": "text/plain"}, 422, "valid dictionary"),
    (b"", {"content-type": "application/json"}, 422, "body is missing"),
    (b"[1, 2]", {"content-type": "application/json"}, 422, "valid dictionary"),
    (b" " * (1 << 20) + b"{}", {"content-type": "application/json"}, 413, "larger than 1024 KiB"),
], ids=["bad-json", "text-plain", "empty", "array", "too-large"])
def test_malformed_bodies_get_a_message_not_a_500(http, content, headers, status, message):
    response = http.post("/v1/jobs", content=content, headers=headers)
    assert response.status_code == status, response.text
    assert message in response.json()["detail"]


def test_a_streamed_body_over_the_limit_is_refused(http):
    def chunks():
        for _ in range(20):
            yield b" " * 65536

    response = http.post("/v1/jobs", content=chunks(), headers={"content-type": "application/json"})
    assert response.status_code == 413 and "larger than" in response.json()["detail"]


@pytest.mark.parametrize("job_id", ["abc", "00000000-0000-0000-0000-000000000000", str(uuid.uuid4())])
@pytest.mark.parametrize("method, suffix", [("GET", ""), ("GET", "/candidates"), ("POST", "/cancel")])
def test_unknown_jobs_are_404_with_a_message(http, job_id, method, suffix):
    response = http.request(method, f"/v1/jobs/{job_id}{suffix}")
    assert response.status_code == 404
    assert response.json()["detail"].startswith("no job")


def test_list_filters_and_pages(http, finished_job):
    listed = http.get("/v1/jobs", params={"status": "succeeded", "limit": 200}).json()
    assert finished_job["id"] in [j["id"] for j in listed["data"]]
    assert all(j["status"] == "succeeded" for j in listed["data"]) and listed["count"] >= 1
    assert http.get("/v1/jobs", params={"status": "cancelled", "owner": "nobody"}).json() == {"data": [], "count": 0}
    first = http.get("/v1/jobs", params={"limit": 1}).json()
    assert len(first["data"]) == 1 and first["count"] >= 1
    for params, message in [({"limit": 201}, "less than or equal to 200"), ({"offset": -1}, "greater than"),
                            ({"status": "done"}, "'queued'")]:
        response = http.get("/v1/jobs", params=params)
        assert response.status_code == 422 and message in response.json()["detail"]


def test_cancel_stops_a_running_job_and_a_finished_job_is_a_409(api, http, finished_job):
    job = api.submit(job_spec(n=200, probe=64, seed=11))
    wait_for(lambda: api.job(job["id"])["progress"]["scored"] >= 1, timeout=90, what="scoring to start")

    cancelled = http.post(f"/v1/jobs/{job['id']}/cancel")
    assert cancelled.status_code == 202 and cancelled.json()["status"] == "cancelled"

    def settled() -> bool:  # the candidate being scored when cancel arrived may still land; then nothing more
        before = api.job(job["id"])["progress"]["scored"]
        time.sleep(1.5)
        return before == api.job(job["id"])["progress"]["scored"]

    wait_for(settled, timeout=30, interval=0, what="scoring to stop")
    final = api.job(job["id"])
    assert final["status"] == "cancelled" and final["progress"]["pending"] > 0 and final["finished_at"]

    for job_id, state in ((job["id"], "cancelled"), (finished_job["id"], "succeeded")):
        again = http.post(f"/v1/jobs/{job_id}/cancel")
        assert again.status_code == 409 and f"already finished ({state})" in again.json()["detail"]
    with pytest.raises(KnasClientError, match="409"):
        api.cancel(job["id"])
