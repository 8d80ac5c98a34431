"""Zero-cost proxy registry: one module per proxy, each registering itself."""
from __future__ import annotations

from importlib import import_module

from .base import PROXIES, Proxy, per_sample_batchnorm, proxy

# Each module registers its proxies on import; add a new proxy by adding its module here.
for _module in ("mgm", "grad_norm", "snip", "synflow", "naswot", "params", "flops", "zico", "jacov", "az", "ensemble"):
    import_module(f"{__name__}.{_module}")


def get_proxy(name: str) -> Proxy:
    return PROXIES.get(name)


def list_proxies() -> list[str]:
    return PROXIES.names()


__all__ = ["PROXIES", "Proxy", "get_proxy", "list_proxies", "per_sample_batchnorm", "proxy"]
