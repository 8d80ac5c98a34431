"""Energy used by a block of work, where the machine exposes a counter; otherwise None ("unknown").

NVIDIA GPUs: NVML's total-energy counter (millijoules) via nvidia-ml-py, if installed.
CPUs: Linux RAPL package counters (microjoules) under /sys/class/powercap, if readable.
Never an estimate from nominal power: an unknown stays unknown.
"""
from __future__ import annotations

import functools
import glob
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

RAPL_GLOB = "/sys/class/powercap/intel-rapl:[0-9]*/energy_uj"


@dataclass
class EnergyReading:
    joules: float | None = None
    source: str = "unknown"


def _rapl_reader() -> Callable[[], float] | None:
    paths = [Path(p) for p in glob.glob(RAPL_GLOB)]  # RAPL_GLOB is part of the cache key above
    try:
        for p in paths:
            int(p.read_text())
    except (OSError, ValueError):
        return None
    if not paths:
        return None
    return lambda: sum(int(p.read_text()) for p in paths) / 1e6


def _nvml_reader(device: str) -> Callable[[], float] | None:
    if not device.startswith("cuda"):
        return None
    try:
        import pynvml

        pynvml.nvmlInit()
        index = int(device.split(":")[1]) if ":" in device else 0
        handle = pynvml.nvmlDeviceGetHandleByIndex(index)
        pynvml.nvmlDeviceGetTotalEnergyConsumption(handle)
    except Exception:  # noqa: BLE001 - no NVML, no counter, no permission: unknown
        return None
    return lambda: pynvml.nvmlDeviceGetTotalEnergyConsumption(handle) / 1e3


def energy_reader(device: str) -> tuple[Callable[[], float] | None, str]:
    """The machine's counter for `device`, found once per process (NVML init and the RAPL glob are not
    free, and scoring asks for it per candidate)."""
    return _cached_reader(device, RAPL_GLOB)


@functools.lru_cache(maxsize=16)
def _cached_reader(device: str, rapl_glob: str) -> tuple[Callable[[], float] | None, str]:
    reader = _nvml_reader(device)
    if reader is not None:
        return reader, "nvml"
    reader = _rapl_reader()
    if reader is not None:
        return reader, "rapl"
    return None, "unknown"


@contextmanager
def measure_energy(device: str) -> Iterator[EnergyReading]:
    """Joules spent inside the block, or joules=None with source 'unknown'."""
    reader, source = energy_reader(device)
    reading = EnergyReading(source=source)
    start = reader() if reader else None
    try:
        yield reading
    finally:
        if reader is not None and start is not None:
            delta = reader() - start
            reading.joules = delta if delta >= 0 else None  # a wrapped counter is unknown, not negative
