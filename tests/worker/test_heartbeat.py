"""The heartbeat thread keeps the worker's row fresh and runs the sweep on every beat."""
from __future__ import annotations

import time

from sqlalchemy import select

from models import Worker
from worker.presence import Heartbeat, record

from tests.support.waiting import wait_for


def row(store, name):
    with store.session() as s:
        return s.scalar(select(Worker).where(Worker.name == name))


def test_heartbeat_upserts_its_row_and_sweeps_until_stopped(store):
    record(store, "gpu0@h", hostname="h", device="cuda", current_job="left-over-from-a-crash")
    sweeps = []
    beat = Heartbeat(store, "gpu0@h", "cuda", interval=0.05, on_beat=lambda: sweeps.append(1), hostname="h")
    beat.start()
    try:
        wait_for(lambda: len(sweeps) >= 3, 10, "three beats", interval=0.02)
        first = row(store, "gpu0@h")
        time.sleep(0.2)
        second = row(store, "gpu0@h")
    finally:
        beat.stop()
    assert len(sweeps) >= 3 and not beat.is_alive()
    assert first.current_job is None  # a (re)started node holds no job
    assert second.last_seen > first.last_seen and second.started_at == first.started_at
    assert (second.hostname, second.device) == ("h", "cuda")


def test_a_failing_beat_does_not_kill_the_thread(store):
    calls = []

    def broken_sweep():
        calls.append(1)
        raise ConnectionError("broker down")

    beat = Heartbeat(store, "cpu@h", "cpu", interval=0.02, on_beat=broken_sweep)
    beat.start()
    try:
        wait_for(lambda: len(calls) >= 3, 10, "three beats, each failing", interval=0.02)
    finally:
        beat.stop()
    assert len(calls) >= 3
