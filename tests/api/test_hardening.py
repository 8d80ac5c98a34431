"""Smaller hardening points of issue 14 (finding 7): file modes of the embedded store, a cheap /healthz,
no CDN-loaded /docs in service mode, other users' current jobs hidden on /v1/workers."""
from __future__ import annotations

import stat
import time
import uuid

import httpx
import redis

from models import Store, Worker, utcnow


def _mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_embedded_store_and_home_are_private(start_live_server, tmp_path):
    home = tmp_path / "fresh" / "home"
    server = start_live_server(KNAS_HOME=str(home))
    assert _mode(home) == 0o700
    assert _mode(home / "knas.db") == 0o600
    assert _mode(home / "token") == 0o600
    for extra in ("knas.db-wal", "knas.db-shm"):  # SQLite gives them the database file's mode
        if (home / extra).exists():
            assert _mode(home / extra) & 0o077 == 0, extra
    assert server.process.poll() is None


def test_an_existing_world_readable_store_is_tightened(tmp_path):
    path = tmp_path / "old.db"
    Store(f"sqlite:///{path}").dispose()
    path.chmod(0o644)
    Store(f"sqlite:///{path}").dispose()
    assert _mode(path) == 0o600


def _connections(client: redis.Redis) -> int:
    return int(client.info("stats")["total_connections_received"])


def test_healthz_is_cached_and_reuses_one_broker_connection(pg_server_with_broker, redis_url):
    server = pg_server_with_broker
    probe = redis.Redis.from_url(redis_url)
    try:
        httpx.get(f"{server.url}/healthz", timeout=10)
        time.sleep(2.1)  # past the cache: the next call checks again, over the connection it already has
        before = _connections(probe)
        with httpx.Client(base_url=server.url, timeout=10) as http:
            answers = [http.get("/healthz") for _ in range(30)]
            time.sleep(2.1)
            answers += [http.get("/healthz") for _ in range(3)]
        opened = _connections(probe) - before
    finally:
        probe.close()
    assert all(a.status_code == 200 and a.json()["broker"] == "ok" for a in answers)
    assert opened <= 3, f"{opened} new broker connections for 33 /healthz calls"  # (others may share this Redis)


def test_docs_are_off_in_service_mode_and_on_when_embedded(pg_server_with_broker, embedded_server):
    for path in ("/docs", "/redoc"):
        assert httpx.get(f"{pg_server_with_broker.url}{path}", timeout=10).status_code == 404
        assert httpx.get(f"{embedded_server.url}{path}", timeout=10).status_code == 200
    assert httpx.get(f"{pg_server_with_broker.url}/openapi.json", timeout=10).status_code == 200  # clients use it


def test_only_admins_see_which_job_a_worker_is_on(pg_server_with_broker):
    server = pg_server_with_broker
    job = str(uuid.uuid4())
    store = Store(server.env["KNAS_DATABASE_URL"])
    try:
        with store.session() as session:
            session.add(Worker(name="gpu0@node1", hostname="node1", device="cuda", current_job=job,
                               started_at=utcnow(), last_seen=utcnow()))
    finally:
        store.dispose()
    user = server.add_user(f"pat-{uuid.uuid4().hex[:6]}")
    with httpx.Client(base_url=server.url, timeout=10) as http:
        theirs = http.get("/v1/workers", headers={"Authorization": f"Bearer {user}"}).json()
        admins = http.get("/v1/workers", headers=server.auth).json()
    assert [(w["name"], w["current_job"]) for w in theirs] == [("gpu0@node1", None)]
    assert [(w["name"], w["current_job"]) for w in admins] == [("gpu0@node1", job)]
