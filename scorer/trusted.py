"""Files loaded with pickle are code: refuse one that someone else could have written.

CIFAR/ImageNet16 batches and NATS-Bench records are pickles, and unpickling runs whatever the file
says. On a shared server a group- or world-writable file could be replaced by any user, so knas
refuses to load it (the operator's duty — keep data and benchmark directories writable by their
owner only — is in docs/cluster.md).
"""
from __future__ import annotations

import os
import stat
from pathlib import Path


class UntrustedFileError(PermissionError):
    """A pickle that others may write; the message says how to fix its mode."""


def check_trusted(path: Path | str) -> Path:
    path = Path(path)
    mode = os.stat(path).st_mode
    if mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise UntrustedFileError(
            f"{path} is writable by its group or by everyone (mode {stat.filemode(mode)}); it is a pickle, and "
            f"loading a pickle runs code from it, so knas refuses. Make it writable by its owner only: "
            f"chmod go-w {path}")
    return path
