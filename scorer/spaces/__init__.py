"""Search-space registry. Importing this package does not import torch."""
from __future__ import annotations

from ..registry import Registry
from .base import InvalidArchError, SearchSpace
from .mbv2 import MobileNetV2Space
from .nats_sss import NatsSizeSpace
from .nats_tss import NatsTopologySpace

SPACES: Registry[SearchSpace] = Registry("search space")
SPACES.add("nats-tss", NatsTopologySpace(), "nas-bench-201", "nb201")
SPACES.add("nats-sss", NatsSizeSpace())
SPACES.add("mbv2", MobileNetV2Space(), "mobilenetv2")


def get_space(name: str) -> SearchSpace:
    return SPACES.get(name)


def list_spaces() -> list[str]:
    return SPACES.names()


__all__ = ["InvalidArchError", "SearchSpace", "SPACES", "get_space", "list_spaces"]
