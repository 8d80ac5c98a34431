"""Time for the lease tests: let time pass for the store, or put this host's clock off.

Leases, heartbeats and the progress clock are the database's clock (models/clock.py), so a test
cannot move "now" forward for the sweep; `age` moves every lease clock back instead, which is the
same to every rule. `skewed_clock` puts this process's own clock (`models.base.utcnow`, the one
every module reads) hours off, as on a host without NTP: leases must not notice.
"""
from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select, update

from models import Job, Store, Training, Worker


def age(store: Store, seconds: float) -> None:
    """`seconds` pass for every lease clock of the store (jobs' progress and sweeps, heartbeats, workers)."""
    delta = timedelta(seconds=seconds)
    with store.session() as session:
        for job_id, updated_at, swept_at in session.execute(select(Job.id, Job.updated_at, Job.swept_at)).all():
            session.execute(update(Job).where(Job.id == job_id).values(  # both at once: updated_at has an onupdate
                updated_at=updated_at - delta, swept_at=swept_at - delta if swept_at else None))
        for training_id, heartbeat_at in session.execute(
                select(Training.id, Training.heartbeat_at).where(Training.heartbeat_at.is_not(None))).all():
            session.execute(update(Training).where(Training.id == training_id).values(heartbeat_at=heartbeat_at - delta))
        for worker_id, last_seen in session.execute(select(Worker.id, Worker.last_seen)).all():
            session.execute(update(Worker).where(Worker.id == worker_id).values(last_seen=last_seen - delta))


def skew_clock(monkeypatch, hours: float) -> None:
    """This process's clock runs `hours` off the real time from here on (negative: behind); monkeypatch undoes it."""
    import models.base

    class Skewed(datetime):
        @classmethod
        def now(cls, tz=None):
            return datetime.now(tz) + timedelta(hours=hours)

    monkeypatch.setattr(models.base, "datetime", Skewed)
