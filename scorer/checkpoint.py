"""Training checkpoints on disk, so a killed worker's training resumes from its last finished epoch.

The state is `train_network`'s (tensors, numbers, strings, lists and dicts only),
so it loads with `weights_only=True`: reading a checkpoint never runs pickled code.
Writes are atomic (temporary file, fsync, rename): a crash mid-write leaves the
previous checkpoint intact, never a torn one.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch


class CheckpointError(RuntimeError):
    """A checkpoint file that is missing or cannot be read; the message names the path."""


def save_checkpoint(state: dict, path: Path | str) -> None:
    """Write `state` to `path` atomically, creating its directory."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, "wb") as f:
            torch.save(state, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    try:  # make the rename itself durable
        fd = os.open(path.parent, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def load_checkpoint(path: Path | str) -> dict:
    """The state saved at `path`, every tensor on the CPU."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at {path}")
    try:
        state = torch.load(path, weights_only=True, map_location="cpu")
    except Exception as exc:
        raise CheckpointError(f"checkpoint {path} is corrupt or not a knas checkpoint: {exc}") from exc
    if not isinstance(state, dict) or "format" not in state:
        raise CheckpointError(f"checkpoint {path} is not a knas training state (no 'format' key)")
    return state
