"""What a worker process needs to run pipeline steps: paths, device, and caches.

Built once per process from Settings; caches probe batches and dataset splits
so consecutive chunks of one job don't reload data.
"""
from __future__ import annotations

import socket
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from knas.jobspec import JobSpec
from knas.settings import Settings


@dataclass
class Runtime:
    data_dir: Path | None = None
    benchmark_dir: Path | None = None
    device: str = "cpu"
    worker_name: str = field(default_factory=socket.gethostname)

    @classmethod
    def from_settings(cls, settings: Settings, worker_name: str | None = None) -> "Runtime":
        return cls(
            data_dir=settings.data_dir,
            benchmark_dir=settings.benchmark_dir,
            device=settings.resolved_device(),
            worker_name=worker_name or socket.gethostname(),
        )

    def probe(self, spec: JobSpec, repeat: int = 0):
        """The fixed batch every candidate of the job is scored on (one per repeat)."""
        from scorer.seeding import repeat_seed

        return _probe(spec.dataset, spec.proxy.batch_size, repeat_seed(spec.seed, repeat), self.data_dir)

    def split(self, dataset: str, split: str):
        from scorer.data import load_split

        return load_split(dataset, split, data_dir=self.data_dir)

    def dataset_info(self, dataset: str) -> Any:
        from scorer.data import get_dataset

        return get_dataset(dataset).info


@lru_cache(maxsize=8)
def _probe(dataset: str, n: int, seed: int, data_dir: Path | None):
    from scorer.data import probe_batch

    return probe_batch(dataset, n, seed, data_dir=data_dir)
