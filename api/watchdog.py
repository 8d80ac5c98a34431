"""The API's stall watchdog: the one sweep rule that must run even when no worker is alive.

Torch-free (the API process runs it); the rule itself is `worker.sweep.fail_stalled`.
"""
from __future__ import annotations

import logging
import threading

from models import Store

log = logging.getLogger(__name__)


class StallWatchdog(threading.Thread):
    """Fail started jobs that made no progress for `stall_timeout` seconds, every `interval` seconds.

    Workers run the whole sweep from their heartbeat threads, but when every worker is gone nobody
    sweeps, and a job would show `scoring`/`training` for ever. The API process (always up, torch-free)
    runs this one rule too: `worker.sweep.fail_stalled`, a conditional UPDATE that is safe alongside
    any number of worker sweeps. Best effort: a database outage is logged and tried again next round.
    """

    def __init__(self, store: Store, stall_timeout: float, interval: float) -> None:
        super().__init__(name="knas-stall-watchdog", daemon=True)
        self.store, self.stall_timeout, self.interval = store, stall_timeout, interval
        self.rounds = 0
        self._stop_event = threading.Event()

    def check(self) -> dict[str, str]:
        from worker.sweep import fail_stalled  # torch-free: the store and worker.jobs only

        failed = fail_stalled(self.store, self.stall_timeout).failed
        self.rounds += 1
        return failed

    def run(self) -> None:
        while not self._stop_event.wait(self.interval):
            try:
                self.check()  # fail_stalled logs each job it fails, with the reason
            except Exception:  # noqa: BLE001 - the database may be down: try again next round
                log.warning("stall watchdog round failed", exc_info=True)

    def stop(self, timeout: float = 5.0) -> None:
        self._stop_event.set()
        if self.is_alive() and threading.current_thread() is not self:
            self.join(timeout)
