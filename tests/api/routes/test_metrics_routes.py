"""/metrics: Prometheus text with request counts by route template and jobs by status; bounded labels."""
from __future__ import annotations

import re
import uuid

import httpx

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
    assert requests[("GET", "/v1/jobs/{job_id}", "2xx")] >= 1  # the template, not the id; the status class
    assert requests[("GET", "/v1/jobs/{job_id}", "4xx")] >= 1
    assert not any(finished_job["id"] in route for _, route, _ in requests)
    assert any(s.name == "knas_http_request_duration_seconds_bucket" for s in families[
        "knas_http_request_duration_seconds"].samples)

    jobs = {s.labels["status"]: s.value for s in families["knas_jobs"].samples}
    assert set(jobs) == {"queued", "scoring", "ranking", "training", "succeeded", "failed", "cancelled"}
    assert jobs["succeeded"] >= 1


def _metrics(http: httpx.Client) -> tuple[int, str]:
    """The size of /metrics, and its text with every sample value blanked (the label sets alone)."""
    text = re.sub(r"^knas_jobs.*$", "", http.get("/metrics").text, flags=re.M)  # other jobs may come and go
    return len(text), re.sub(r" \S+$", " N", text, flags=re.M)


def test_made_up_methods_and_paths_do_not_grow_metrics(start_server, tmp_path):
    """Every label has a fixed set of values: 300 junk requests add no series (issue 14, finding 3)."""
    server = start_server(KNAS_HOME=str(tmp_path / "home"))
    with httpx.Client(base_url=server.url, timeout=30) as http:
        def junk(i: int) -> None:
            http.request(f"X{uuid.uuid4().hex[:8].upper()}", f"/no/such/{uuid.uuid4().hex}")
            http.request(f"Y{i}", "/v1/jobs")  # a real route, a made-up method
            http.get(f"/made-up/{i}")

        for i in range(3):  # every label combination these requests can make exists from here on
            junk(i)
        _metrics(http)  # ... and the scrape's own
        size, labels = _metrics(http)
        for i in range(100):
            junk(i)
        size_after, labels_after = _metrics(http)
        assert labels_after == labels  # the same series, only their values moved
        assert abs(size_after - size) <= 200, (size, size_after)  # a few more digits in the counters
        methods = set(re.findall(r'method="([^"]*)"', labels_after))
        assert methods <= {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT", "other"}
        assert set(re.findall(r'status="([^"]*)"', labels_after)) <= {"1xx", "2xx", "3xx", "4xx", "5xx", "other"}
        assert "/no/such" not in labels_after and "/made-up" not in labels_after
