"""knas scorer: search spaces, datasets, zero-cost proxies and the top-k trainer.

Pure PyTorch; knows nothing of HTTP, Celery or the database. Names are
resolved lazily so `import scorer.spaces` (what the API uses) stays torch-free.
"""
from __future__ import annotations

from .registry import lazy_exports

__version__ = "0.1.0"  # recorded with every stored score

_EXPORTS = {
    "get_space": "scorer.spaces",
    "list_spaces": "scorer.spaces",
    "InvalidArchError": "scorer.spaces",
    "get_proxy": "scorer.proxies",
    "list_proxies": "scorer.proxies",
    "proxy_info": "scorer.proxies",
    "get_dataset": "scorer.data",
    "dataset_info": "scorer.data",
    "list_datasets": "scorer.data",
    "probe_batch": "scorer.data",
    "candidate_seed": "scorer.seeding",
    "score_arch": "scorer.scoring",
}

__getattr__ = lazy_exports(__name__, _EXPORTS)


__all__ = sorted(_EXPORTS)
