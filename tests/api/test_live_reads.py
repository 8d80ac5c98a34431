"""Cheap reads of a moving job (issue 13): ETag/304, the event stream with Last-Event-ID resume, the auth cache."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from knas.client import _parse_events
from tests.support.paths import REPO
from tests.support.specs import job_spec
from tests.support.waiting import wait_for


# ---------------------------------------------------------------- ETag / If-None-Match

def test_job_and_candidate_reads_answer_304_until_a_score_is_stored(pg_server_with_broker, runtime):
    """No worker runs: the job moves only when this test scores a candidate through the pipeline."""
    from models import Store
    from worker.pipeline import score_chunk, start_job

    server = pg_server_with_broker
    with httpx.Client(base_url=server.url, timeout=30, headers=server.auth) as http:
        job = http.post("/v1/jobs", json=job_spec(n=2, seed=3)).json()
        paths = [(f"/v1/jobs/{job['id']}", {}), (f"/v1/jobs/{job['id']}/candidates", {}),
                 (f"/v1/jobs/{job['id']}/candidates", {"format": "csv"}),
                 (f"/v1/jobs/{job['id']}/candidates", {"limit": 1, "offset": 1})]
        tags = {}
        for path, params in paths:
            first = http.get(path, params=params)
            assert first.status_code == 200 and first.headers["etag"].startswith('W/"'), first.text
            assert "no-cache" in first.headers["cache-control"]
            again = http.get(path, params=params, headers={"If-None-Match": first.headers["etag"]})
            assert again.status_code == 304 and again.content == b"" and again.headers["etag"] == first.headers["etag"]
            listed = http.get(path, params=params, headers={"If-None-Match": f'W/"other", {first.headers["etag"]}'})
            assert listed.status_code == 304
            tags[(path, tuple(params.items()))] = first.headers["etag"]
        assert len(set(tags.values())) == len(tags)  # each read (and each page, each format) has its own tag

        store = Store(server.env["KNAS_DATABASE_URL"])
        try:
            chunks = start_job(store, job["id"], chunk_size=1)
            score_chunk(store, runtime, job["id"], chunks[0])  # one score stored, as a worker stores it
        finally:
            store.dispose()

        for (path, params), tag in tags.items():
            moved = http.get(path, params=dict(params), headers={"If-None-Match": tag})
            assert moved.status_code == 200 and moved.headers["etag"] != tag, path
        assert http.get(f"/v1/jobs/{job['id']}").json()["progress"]["scored"] + \
            http.get(f"/v1/jobs/{job['id']}").json()["progress"]["failed"] == 1


# ---------------------------------------------------------------- server-sent events

def read_events(server, job_id: str, last_event_id: str | None = None, stop_after: int | None = None,
                token: str | None = None, timeout: float = 120):
    """Events of one connection: all of them until the stream closes, or the first `stop_after`."""
    headers = {"Authorization": f"Bearer {token or server.token}", "Accept": "text/event-stream"}
    if last_event_id:
        headers["Last-Event-ID"] = last_event_id
    events = []
    deadline = time.monotonic() + timeout
    with httpx.Client(base_url=server.url, timeout=30) as http:
        with http.stream("GET", f"/v1/jobs/{job_id}/events", headers=headers) as response:
            if response.status_code != 200:
                response.read()
                return response, events
            assert response.headers["content-type"].startswith("text/event-stream")
            for event in _parse_events(response.iter_lines()):
                events.append(event)
                if (stop_after is not None and len(events) >= stop_after) or time.monotonic() > deadline:
                    break
    return response, events


def epoch_keys(events) -> list[tuple[int, int]]:
    return [(e.data["candidate_id"], e.data["mode"], e.data["epoch"]) for e in events if e.kind == "epoch"]


@pytest.fixture(scope="module")
def trained_job(embedded_server):
    """A tiny job with a short training (epochs to stream), followed live over the event stream."""
    with embedded_server.client() as client:
        job = client.submit(job_spec(n=4, seed=11, top_k=2, final={"mode": "train", "epochs": 2}))
    response, events = read_events(embedded_server, job["id"], timeout=600)  # the shared server may be busy
    assert response.status_code == 200
    return job, events


def test_the_stream_delivers_progress_to_the_end(embedded_server, trained_job):
    job, events = trained_job
    kinds = [e.kind for e in events]
    assert kinds[-1] == "end" and kinds.count("end") == 1, kinds
    assert events[-1].data["status"] == "succeeded"
    progress = [e.data for e in events if e.kind == "progress"]
    last = progress[-1]["progress"]
    assert last["scored"] + last["failed"] == last["candidates"] == 4 and last["trained"] == 2
    stages = [e.data["status"] for e in events if e.kind == "stage"]
    assert stages[-1] == "succeeded" and len(stages) == len(set(stages))
    assert all(e.id for e in events)  # every event can be resumed from
    # Every stored epoch of every training was sent, once.
    with embedded_server.client() as client:
        trainings = client.request("GET", f"/v1/jobs/{job['id']}/trainings").json()["data"]
    stored = sorted((t["candidate_id"], t["mode"], e["epoch"]) for t in trainings for e in t["epochs"])
    sent = epoch_keys(events)
    assert sorted(sent) == stored and len(sent) == len(set(sent)) and len(sent) >= 4, (sent, stored)


def test_last_event_id_resumes_without_repeating(embedded_server, trained_job):
    job, full = trained_job
    fresh = read_events(embedded_server, job["id"])[1]  # a finished job, from scratch: the whole story once
    assert fresh[-1].kind == "end" and sorted(epoch_keys(fresh)) == sorted(epoch_keys(full))
    first_epoch = next(i for i, e in enumerate(fresh) if e.kind == "epoch")
    head = fresh[:first_epoch + 1]
    response, tail = read_events(embedded_server, job["id"], last_event_id=head[-1].id)
    assert response.status_code == 200
    assert not set(epoch_keys(head)) & set(epoch_keys(tail))  # nothing twice ...
    assert sorted(epoch_keys(head) + epoch_keys(tail)) == sorted(epoch_keys(full))  # ... and nothing missed
    assert [e.kind for e in tail].count("end") == 1 and tail[-1].kind == "end"
    # After the end: nothing left to send, and 204 tells the client to stop reconnecting.
    done, rest = read_events(embedded_server, job["id"], last_event_id=tail[-1].id)
    assert done.status_code == 204 and rest == []
    # A client that saw everything but the end gets only the end.
    response, last = read_events(embedded_server, job["id"], last_event_id=tail[-2].id)
    assert [e.kind for e in last] == ["end"]


@pytest.mark.slow  # a search, followed to the end
def test_resuming_a_live_job_repeats_nothing(embedded_server):
    with embedded_server.client() as client:
        job = client.submit(job_spec(n=6, seed=12))
    _, head = read_events(embedded_server, job["id"], stop_after=2)  # stage + progress, then hang up
    assert head and head[-1].id
    _, tail = read_events(embedded_server, job["id"], last_event_id=head[-1].id, timeout=600)
    assert tail[-1].kind == "end" and tail[-1].data["status"] == "succeeded"
    seen = [(e.kind, tuple(sorted(e.data.get("progress", {}).items())), e.data.get("status")) for e in head + tail
            if e.kind in ("progress", "stage")]
    assert len(seen) == len(set(seen))  # no progress or stage event twice across the reconnection
    ids = [e.id for e in head + tail]
    assert len(ids) == len(set(ids))


def test_another_users_job_has_no_stream(embedded_server, trained_job):
    job, _ = trained_job
    other = embedded_server.add_user(f"stranger-{os.getpid()}-{time.monotonic_ns()}")
    response, events = read_events(embedded_server, job["id"], token=other)
    assert response.status_code == 404 and events == []
    response, _ = read_events(embedded_server, "00000000-0000-0000-0000-000000000000")
    assert response.status_code == 404
    with httpx.Client(base_url=embedded_server.url, timeout=30) as http:
        assert http.get(f"/v1/jobs/{job['id']}/events").status_code == 401


def _requests_by_route(server) -> dict[str, float]:
    with httpx.Client(base_url=server.url, timeout=30) as http:
        text = http.get("/metrics").text
    counts: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "knas_http_requests_total" and sample.labels["method"] == "GET":
                counts[sample.labels["route"]] = counts.get(sample.labels["route"], 0) + sample.value
    return counts


def _connected(port: int) -> bool:
    """Some client holds an established TCP connection to `port` on this host (Linux /proc/net/tcp)."""
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            if fields[3] == "01" and int(fields[1].rsplit(":", 1)[1], 16) == port:
                return True
    return False


def test_knas_status_watch_follows_the_stream(pg_server_with_broker, runtime):
    """No worker: the job waits queued until the CLI follows it, then this test runs it through the pipeline."""
    from models import Store
    from worker.runner import run_job

    server = pg_server_with_broker
    with server.client() as client:
        job = client.submit(job_spec(n=4, seed=13))
    env = {k: v for k, v in os.environ.items() if not k.startswith("KNAS_")}
    env.update(KNAS_SERVER=server.url, KNAS_TOKEN=server.token, OMP_NUM_THREADS="1")
    watch = subprocess.Popen([sys.executable, "-m", "knas.cli.main", "status", job["id"], "--watch", "--json"],
                             cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: _connected(server.port) or watch.poll() is not None, timeout=120, what="the CLI to connect")
        time.sleep(1.0)  # its job read, then the stream on the same connection
        store = Store(server.env["KNAS_DATABASE_URL"])
        try:
            assert run_job(store, runtime, job["id"]) == "succeeded"
        finally:
            store.dispose()
        out, err = watch.communicate(timeout=120)
    finally:
        if watch.poll() is None:
            watch.kill()
    assert watch.returncode == 0, err
    assert '"succeeded"' in out
    # A response is counted when it is complete: the stream's a moment after the client has read the end.
    after = wait_for(lambda: (counts := _requests_by_route(server)).get("/v1/jobs/{job_id}/events", 0) >= 1
                       and counts, timeout=10, what="the stream counted")
    # Pushed, not polled: the job itself was read at the start and at the end only.
    assert after.get("/v1/jobs/{job_id}", 0) <= 3, after


def test_wait_falls_back_to_polling_without_a_stream(embedded_server, finished_job, monkeypatch):
    from knas.client import StreamUnavailable

    def broken(*_args, **_kwargs):
        raise StreamUnavailable("a proxy that buffers everything")
        yield  # pragma: no cover

    with embedded_server.client() as client:
        job = client.submit(job_spec(n=2, seed=14))
        monkeypatch.setattr(client, "events", broken)
        assert client.wait(job["id"], timeout=120, interval=0.3)["status"] == "succeeded"


# ---------------------------------------------------------------- the authentication cache

def test_a_revoked_token_is_refused_within_the_cache_time(pg_server):
    from models import Store
    from models.users import revoke_user, rotate_token

    token = pg_server.add_user("alice")
    with httpx.Client(base_url=pg_server.url, timeout=30, headers={"Authorization": f"Bearer {token}"}) as http:
        for _ in range(5):  # cached now
            assert http.get("/v1/me").status_code == 200
        store = Store(pg_server.env["KNAS_DATABASE_URL"])
        try:
            revoke_user(store, "alice")
            revoked_at = time.monotonic()
            wait_for(lambda: http.get("/v1/me").status_code == 403, timeout=5, interval=0.05, what="403")
            assert time.monotonic() - revoked_at <= 1.5
            new = rotate_token(store, "alice")  # the old token never comes back; the new one works at once
        finally:
            store.dispose()
        assert http.get("/v1/me").status_code == 401
        assert http.get("/v1/me", headers={"Authorization": f"Bearer {new}"}).status_code == 200


def _count_user_queries(app) -> list[int]:
    from sqlalchemy import event

    count = [0]

    def before(_conn, _cursor, statement, *_args) -> None:
        if "FROM users" in statement:
            count[0] += 1

    event.listen(app.state.store.engine, "before_cursor_execute", before)
    return count


@pytest.mark.parametrize("seconds, at_most", [("1.0", 2), ("0", 50)])
def test_a_burst_of_requests_costs_one_user_query(tmp_path, seconds, at_most):
    from fastapi.testclient import TestClient

    from api.main import create_app
    from knas.settings import Settings
    from models.users import add_user

    settings = Settings(home=tmp_path, database_url=f"sqlite:///{tmp_path / 'knas.db'}",
                        auth_cache_seconds=float(seconds))
    with TestClient(create_app(settings)) as http:
        token = add_user(http.app.state.store, "bob")
        count = _count_user_queries(http.app)
        for _ in range(50):
            assert http.get("/v1/me", headers={"Authorization": f"Bearer {token}"}).status_code == 200
        assert count[0] <= at_most and (seconds != "0" or count[0] >= 50), count
        before = count[0]
        for _ in range(5):  # unknown tokens are never cached
            assert http.get("/v1/me", headers={"Authorization": "Bearer knas_nope"}).status_code == 401
        assert count[0] - before == 5
