"""A training's lease, kept alive between epochs by a thread of the process that trains it."""
from __future__ import annotations

import logging
import threading
from contextlib import contextmanager
from typing import Iterator

from models import Store, repository

log = logging.getLogger(__name__)


@contextmanager
def training_lease(store: Store, training_id: int, attempt: int, interval: float) -> Iterator[None]:
    """Refresh `trainings.heartbeat_at` every `interval` s while the block runs (fenced on `attempts`).

    The per-epoch heartbeat alone made an epoch longer than KNAS_LEASE_SECONDS look like a dead
    worker: the sweep reset the training, another worker took it over, the first one's result was
    discarded, and so on for ever. This thread keeps the lease alive while the process lives; it
    dies with the process (a SIGKILLed worker still loses its lease), and it never touches
    `jobs.updated_at`, so a training that hangs without finishing epochs still hits the stall timeout.
    """
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(interval):
            try:
                with store.session() as session:
                    held = repository.renew_training_lease(session, training_id, attempt)
                if not held:  # finished, or taken over: nothing left to keep alive
                    return
            except Exception:  # noqa: BLE001 - a database blip: the next beat tries again
                log.warning("could not refresh the lease of training %s", training_id, exc_info=True)

    thread = threading.Thread(target=beat, name=f"knas-training-{training_id}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(timeout=interval + 5)
