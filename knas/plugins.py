"""Site plug-ins: modules named in KNAS_PLUGINS (comma-separated) that register extra datasets or proxies.

A plug-in is any importable module that registers on import, once per plug-in, with one call that
carries the metadata and the implementation (the object, or a lazy "module:attribute" imported on
first use), e.g.

    from scorer.data import DATASETS, DatasetInfo
    DATASETS.add(DatasetInfo(name="cells", num_classes=4, in_shape=(3, 64, 64), description="..."),
                 "mysite.cells:CELLS")

    from scorer.proxies import PROXIES, ProxyInfo
    PROXIES.add(ProxyInfo("fisher", "sum of Fisher information of activations"), "mysite.fisher:fisher")

Listing, spec validation and the loaders all read that one entry. Workers import plug-ins on
start-up (before the pool forks) and again lazily in each process, so every process that scores
or trains knows them.
"""
from __future__ import annotations

import importlib
from typing import Any


def load_plugins(settings: Any = None) -> list[str]:
    """Import every module in settings.plugins (idempotent). Returns the module names."""
    if settings is None:
        from knas.settings import get_settings

        settings = get_settings()
    names = list(getattr(settings, "plugins", []) or [])
    for name in names:
        try:
            importlib.import_module(name)
        except ImportError as error:
            raise ImportError(f"KNAS_PLUGINS names {name!r}, which cannot be imported: {error}") from error
    return names
