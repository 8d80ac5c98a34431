"""/metrics: Prometheus text with request counts by route template and jobs by status."""
from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families


def test_metrics_count_requests_by_route_and_jobs_by_status(http, finished_job):
    http.get(f"/v1/jobs/{finished_job['id']}")
    http.get("/v1/jobs/not-a-job")
    response = http.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert "knas_http_requests_total" in text and "knas_jobs" in text

    families = {f.name: f for f in text_string_to_metric_families(text)}
    requests = {(s.labels["method"], s.labels["route"], s.labels["status"]): s.value
                for s in families["knas_http_requests"].samples if s.name == "knas_http_requests_total"}
    assert requests[("GET", "/v1/jobs/{job_id}", "200")] >= 1  # the template, not the id
    assert requests[("GET", "/v1/jobs/{job_id}", "404")] >= 1
    assert not any(finished_job["id"] in route for _, route, _ in requests)
    assert any(s.name == "knas_http_request_duration_seconds_bucket" for s in families[
        "knas_http_request_duration_seconds"].samples)

    jobs = {s.labels["status"]: s.value for s in families["knas_jobs"].samples}
    assert set(jobs) == {"queued", "scoring", "ranking", "training", "succeeded", "failed", "cancelled"}
    assert jobs["succeeded"] >= 1
