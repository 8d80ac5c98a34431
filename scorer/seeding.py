"""Deterministic per-candidate seeds, so a score never depends on order or worker."""
from __future__ import annotations

import hashlib
from contextlib import contextmanager
from typing import Iterator


def candidate_seed(job_seed: int, arch: str) -> int:
    """A 63-bit seed derived from (job seed, arch) only."""
    digest = hashlib.sha256(f"{job_seed}:{arch}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


def repeat_seed(seed: int, repeat: int) -> int:
    """The seed of a repeated measurement: repeat 0 is `seed` itself, others are derived from it."""
    if repeat == 0:
        return seed
    digest = hashlib.sha256(f"{seed}:repeat:{repeat}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


@contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Run a block under a fixed torch seed without disturbing the caller's RNG."""
    import torch

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield
