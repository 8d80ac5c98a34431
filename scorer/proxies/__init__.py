"""Zero-cost proxies: one module of maths per proxy, every one declared in `registry.py`.

Importing this package does not import torch: `PROXIES` lists the proxies, resolves aliases and
gives their metadata (`PROXIES.info(name)`) from the declarations alone. `get_proxy` imports the
one module whose maths it returns; `Proxy` and the shared chores (scorer/proxies/base.py) are
resolved lazily, as `scorer/__init__.py` does.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from ..registry import lazy_exports
from .registry import PROXIES, ProxyInfo

if TYPE_CHECKING:  # pragma: no cover
    from .base import Proxy

__getattr__ = lazy_exports(__name__, dict.fromkeys(("Proxy", "per_sample_batchnorm"), f"{__name__}.base"))
_READY: dict[str, "Proxy"] = {}  # canonical name -> its Proxy, built once: an alias gives the same object


def get_proxy(name: str) -> "Proxy":
    """`name` (or an alias) ready to call: its metadata and its maths (imported on first use)."""
    key = PROXIES.canonical(name)
    if key not in _READY:
        from .base import Proxy

        _READY[key] = Proxy.of(PROXIES.info(key), PROXIES.get(key))
    return _READY[key]


def proxy_info(name: str) -> ProxyInfo:
    """The metadata of `name` (or an alias), without importing its maths."""
    return PROXIES.info(name)


def list_proxies() -> list[str]:
    return PROXIES.names()


__all__ = ["PROXIES", "Proxy", "ProxyInfo", "get_proxy", "list_proxies", "per_sample_batchnorm", "proxy_info"]
