"""Job specs for tests: the JSON a client POSTs, small enough to finish in seconds on 2 CPU cores."""
from __future__ import annotations

from typing import Any


def job_spec(n: int = 3, *, seed: int = 0, dataset: str = "digits", proxy: str | dict[str, Any] = "mgm",
             probe: int = 8, top_k: int = 1, epochs: int | None = None, priority: int | None = None,
             **overrides: Any) -> dict[str, Any]:
    """`n` random nats-tss candidates scored by `proxy` on a `probe`-sample batch; no training unless `epochs`.

    `proxy` is a name (with `probe` as its batch size) or a whole proxy object; `priority` is left out
    (the spec's default) unless given; `overrides` replace whole top-level fields (`final`, `constraints`...).
    The default dataset, `digits`, ships with knas, so every server knows it; `tiny_spec` is for workers.
    """
    spec: dict[str, Any] = {
        "space": "nats-tss", "dataset": dataset, "candidates": {"strategy": "random", "n": n},
        "proxy": proxy if isinstance(proxy, dict) else {"name": proxy, "batch_size": probe},
        "seed": seed, "top_k": top_k, "final": {"mode": "train", "epochs": epochs} if epochs else {"mode": "none"}}
    if priority is not None:
        spec["priority"] = priority
    return {**spec, **overrides}


def tiny_spec(n: int, *, seed: int, proxy: str = "ensemble", probe: int = 16, top_k: int = 2,
              epochs: int | None = None, priority: int = 5) -> dict[str, Any]:
    """A job on the test-only `tiny` dataset (3x8x8 images, tests/plugins/tiny_dataset.py, which workers load
    through KNAS_PLUGINS): ensemble scoring costs ~0.25 s a candidate, an epoch of training ~0.1-0.3 s, so a
    fault can be aimed at a stage and the job still ends in seconds."""
    return job_spec(n, seed=seed, dataset="tiny", proxy=proxy, probe=probe, top_k=top_k, epochs=epochs,
                    priority=priority)
