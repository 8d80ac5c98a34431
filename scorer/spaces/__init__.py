"""Search-space registry. Importing this package does not import torch.

A space object is pure Python up to `build` (which imports torch when called), so it is its
own metadata: each is registered with itself as both the entry's info and its implementation.
"""
from __future__ import annotations

from ..registry import Registry
from .base import InvalidArchError, SearchSpace
from .mbv2 import MobileNetV2Space
from .nats_sss import NatsSizeSpace
from .nats_tss import NatsTopologySpace

SPACES: Registry[SearchSpace, SearchSpace] = Registry("search space")
_TSS, _SSS, _MBV2 = NatsTopologySpace(), NatsSizeSpace(), MobileNetV2Space()
SPACES.add(_TSS, _TSS, "nas-bench-201", "nb201")
SPACES.add(_SSS, _SSS)
SPACES.add(_MBV2, _MBV2, "mobilenetv2")


def get_space(name: str) -> SearchSpace:
    return SPACES.get(name)


def list_spaces() -> list[str]:
    return SPACES.names()


__all__ = ["InvalidArchError", "SearchSpace", "SPACES", "get_space", "list_spaces"]
