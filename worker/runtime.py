"""What a worker process needs to run pipeline steps: paths, device, and caches.

Built once per process from Settings; caches probe batches and dataset splits
so consecutive chunks of one job don't reload data.
"""
from __future__ import annotations

import logging
import multiprocessing
import socket
import threading
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from knas.jobspec import JobSpec
from knas.settings import Settings

from .artifacts import ArtifactStore

log = logging.getLogger(__name__)
_folders_lock = threading.Lock()
# "name@fingerprint" -> the in-process dataset of a registered image folder. A job's data, not a plug-in:
# kept out of scorer.data.DATASETS, so listings (the embedded API's /v1/datasets) never show them.
_FOLDERS: dict[str, Any] = {}


@dataclass
class Runtime:
    data_dir: Path | None = None
    benchmark_dir: Path | None = None
    device: str = "cpu"
    worker_name: str = field(default_factory=socket.gethostname)
    artifact_dir: Path | None = None  # None: checkpoints are not kept (tests, `knas score`)
    loader_workers: int = 0  # processes decoding images of registered folders during training

    @classmethod
    def from_settings(cls, settings: Settings, worker_name: str | None = None) -> "Runtime":
        return cls(
            data_dir=settings.data_dir,
            benchmark_dir=settings.benchmark_dir,
            device=settings.resolved_device(),
            worker_name=worker_name or socket.gethostname(),
            artifact_dir=settings.effective_artifact_dir,
            loader_workers=settings.loader_workers,
        )

    @property
    def artifacts(self) -> ArtifactStore | None:
        return ArtifactStore(self.artifact_dir) if self.artifact_dir is not None else None

    def dataset_for(self, spec: JobSpec, data: dict | None) -> JobSpec:
        """The spec to run: a registered image folder (the job's `data` record) becomes an in-process
        dataset named by its fingerprint, checked once per process to be unchanged on this node."""
        if not data:
            return spec
        from scorer.data.image_folder import ImageFolderDataset
        from scorer.folders import FolderSummary

        key = f"{data['name']}@{data['fingerprint'][:12]}"
        if key not in _FOLDERS:
            with _folders_lock:
                if key not in _FOLDERS:
                    dataset = ImageFolderDataset(key, FolderSummary.from_dict(data["summary"]))
                    dataset.check(None)  # the folder this node sees is the one that was registered
                    _FOLDERS[key] = dataset
        return spec.model_copy(update={"dataset": key})

    def workers_for_loading(self) -> int:
        """Decoding processes for a DataLoader; none inside a daemonic process (a Celery pool child),
        which may not start children."""
        return 0 if multiprocessing.current_process().daemon else self.loader_workers

    def probe(self, spec: JobSpec, repeat: int = 0):
        """The fixed batch every candidate of the job is scored on (one per repeat)."""
        from scorer.seeding import repeat_seed

        return _probe(spec.dataset, spec.proxy.batch_size, repeat_seed(spec.seed, repeat), self.data_dir)

    def split(self, dataset: str, split: str):
        """Tensors for built-in sets; a streaming torch Dataset for image folders (None: no such split)."""
        from scorer.data import get_dataset, load_split

        # Any: a streaming source (an image folder) has `stream` and `has_split`, which the Dataset protocol lacks
        source: Any = _FOLDERS[dataset] if dataset in _FOLDERS else get_dataset(dataset)
        if hasattr(source, "stream"):
            return source.stream(split) if source.has_split(split) else None
        return load_split(dataset, split, data_dir=self.data_dir)

    def dataset_info(self, dataset: str) -> Any:
        """A registered folder's DatasetInfo, else the registry's metadata of a built-in or plug-in set."""
        from scorer.data import DATASETS

        return _FOLDERS[dataset].info if dataset in _FOLDERS else DATASETS.info(dataset)


@lru_cache(maxsize=8)
def _probe(dataset: str, n: int, seed: int, data_dir: Path | None):
    from scorer.data import probe_batch

    return probe_batch(_FOLDERS.get(dataset, dataset), n, seed, data_dir=data_dir)
