"""/v1/workers: heartbeat rows, newest first, `alive` from the sweep interval."""
from __future__ import annotations

from datetime import timedelta

from models import Store, Worker, utcnow


def test_workers_newest_first_with_alive(api, embedded_home):
    store = Store(f"sqlite:///{embedded_home / 'knas.db'}")  # the server's own store
    now = utcnow()
    with store.session() as session:
        session.add_all([
            Worker(name="gpu-0@old", hostname="old", device="cuda:0", started_at=now - timedelta(hours=2),
                   last_seen=now - timedelta(hours=1)),  # 3 x 30 s sweep interval long gone
            Worker(name="gpu-1@new", hostname="new", device="cuda:1", current_job=None, started_at=now,
                   last_seen=now),
        ])
    store.dispose()
    workers = [w for w in api.workers() if w["name"] in ("gpu-0@old", "gpu-1@new")]
    assert [w["name"] for w in workers] == ["gpu-1@new", "gpu-0@old"]
    assert [w["alive"] for w in workers] == [True, False]
    assert workers[0]["device"] == "cuda:1" and workers[0]["hostname"] == "new"
