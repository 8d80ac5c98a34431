"""Site plug-ins: modules named in KNAS_PLUGINS (comma-separated) that register extra datasets or proxies.

A plug-in is any importable module that registers on import, e.g. `scorer.data.DATASETS.add(...)`
plus its torch-free `scorer.catalog.DATASETS` entry. Workers import them on start-up (before the
pool forks) and again lazily in each process, so every process that scores or trains knows them.
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
