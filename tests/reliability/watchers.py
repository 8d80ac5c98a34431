"""Observers that run beside a fault: a thread reading job states from the store, a client polling the API.

Both record what they saw for the test (and LEDGER) to judge afterwards; neither fails while the
fault is on (the database or the API may be down on purpose).
"""
from __future__ import annotations

import threading
from typing import Any, Iterable

import httpx

from tests.reliability.ledger import LEDGER
from tests.support.workers import DONE

ORDER = {"queued": 0, "scoring": 1, "ranking": 2, "training": 3, "succeeded": 4, "failed": 4, "cancelled": 4}


class StateWatch(threading.Thread):
    """Reads the jobs' status and progress every `interval` s on its own connection, for the whole test.

    Records every state seen; a state that goes backwards (or leaves a final state), or a scored
    count that shrinks, is a violation. Read errors (the database is down on purpose) are counted, not fatal.
    """

    def __init__(self, db_url: str, job_ids: Iterable[str], interval: float = 0.05) -> None:
        super().__init__(name="state-watch", daemon=True)
        from models import Store

        self.store = Store(db_url, check_schema=False, pool_size=1, max_overflow=0)
        self.job_ids, self.interval = list(job_ids), interval
        self.seen: dict[str, list[str]] = {j: [] for j in self.job_ids}
        self.done_counts: dict[str, int] = {j: 0 for j in self.job_ids}
        self.violations: list[str] = []
        self.read_errors = 0
        self._halt = threading.Event()

    def add(self, job_id: str) -> None:
        self.seen.setdefault(job_id, [])
        self.done_counts.setdefault(job_id, 0)
        self.job_ids.append(job_id)

    def poll(self) -> None:
        from sqlalchemy import func, select

        from models import Candidate, Job

        with self.store.session() as s:
            states = dict(s.execute(select(Job.id, Job.status).where(Job.id.in_(list(self.job_ids)))).all())
            counts = dict(s.execute(select(Candidate.job_id, func.count()).where(
                Candidate.job_id.in_(list(self.job_ids)), Candidate.status != "pending").group_by(Candidate.job_id)).all())
        for job_id, state in states.items():
            history = self.seen[job_id]
            if history and history[-1] != state:
                before = history[-1]
                if ORDER[state] < ORDER[before] or before in DONE:
                    self.violations.append(f"job {job_id}: {before} -> {state}")
            if not history or history[-1] != state:
                history.append(state)
            count = counts.get(job_id, 0)
            if count < self.done_counts[job_id]:
                self.violations.append(f"job {job_id}: finished candidates went from {self.done_counts[job_id]} to {count}")
            self.done_counts[job_id] = max(count, self.done_counts[job_id])

    def run(self) -> None:
        while not self._halt.is_set():
            try:
                self.poll()
            except Exception:  # noqa: BLE001 - the database may be down on purpose
                self.read_errors += 1
            self._halt.wait(self.interval)

    def stop(self) -> dict[str, list[str]]:
        """Stop, take one last reading, record the figures, and fail on any backwards move."""
        self._halt.set()
        self.join(10)
        try:
            self.poll()
        except Exception:  # noqa: BLE001
            self.read_errors += 1
        self.store.dispose()
        LEDGER.transitions += sum(max(0, len(h) - 1) for h in self.seen.values())
        LEDGER.backwards += len(self.violations)
        assert not self.violations, f"state went backwards: {self.violations}; seen {self.seen}"
        return self.seen

    def __enter__(self) -> "StateWatch":
        if self.ident is None:  # not started yet (a test may start it early, then use `with`)
            self.start()
        return self

    def __exit__(self, exc_type, *_exc) -> None:
        if exc_type is None:
            self.stop()
        else:  # the test already failed: still stop the thread and the engine
            self._halt.set()
            self.join(10)
            self.store.dispose()


class Poller(threading.Thread):
    """A client polling GET /v1/jobs/{id} like `knas status --watch`, tolerating a server that is restarting.

    Records every answer; `refused` counts connection failures (no server listening), which a
    restarting API may cause; any HTTP status other than 200 is kept for the test to judge.
    """

    def __init__(self, url: str, token: str, job_id: str, interval: float = 0.1) -> None:
        super().__init__(name="poller", daemon=True)
        self.url, self.token, self.job_id, self.interval = url, token, job_id, interval
        self.answers: list[tuple[int, dict[str, Any] | str]] = []
        self.refused = 0
        self._halt = threading.Event()

    def run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=10, headers={"Authorization": f"Bearer {self.token}"}) as http:
            while not self._halt.is_set():
                try:
                    response = http.get(f"/v1/jobs/{self.job_id}")
                except httpx.TransportError:
                    self.refused += 1
                else:
                    try:
                        body: Any = response.json()
                    except ValueError:
                        body = response.text
                    self.answers.append((response.status_code, body))
                    LEDGER.http[f"{response.status_code // 100}xx"] += 1
                    if response.status_code == 200 and body.get("status") in DONE:
                        return
                self._halt.wait(self.interval)

    def stop(self) -> None:
        self._halt.set()
        self.join(15)
