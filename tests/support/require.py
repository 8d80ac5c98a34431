"""What a test needs from the machine: missing in CI is a failure, missing on a laptop is a skip.

CI (CI=true) must provide every service, binary and data file the suite uses, so a missing one
there fails loudly instead of silently skipping; a developer without PostgreSQL or Chromium still
gets the rest of the suite.
"""
from __future__ import annotations

import glob
import os
import shutil
from pathlib import Path
from typing import NoReturn

import pytest

from .paths import SHARED_DATA


def in_ci() -> bool:
    return bool(os.environ.get("CI"))


def require_service(what: str, error: object = None) -> NoReturn:
    """`what` (a service, a binary, a data file) is not there: fail under CI, skip elsewhere."""
    reason = f"{what} is unavailable" + (f": {error}" if error not in (None, "") else "")
    if in_ci():
        pytest.fail(f"CI: {reason}")
    pytest.skip(reason)


def require_binary(name: str) -> str:
    """`name` on PATH, else in PostgreSQL's versioned bin folders (the newest version)."""
    found = shutil.which(name)
    if found is None:
        candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"),
                            key=lambda p: [int(x) for x in Path(p).parts[-3].split(".") if x.isdigit()])
        found = candidates[-1] if candidates else None
    if found is None:
        require_service(f"the `{name}` binary", "not on PATH (.ci/run installs it)")
    return found


def require_shared(relative: str) -> Path:
    """A path under the shared data folder (tests.support.paths.SHARED_DATA)."""
    path = SHARED_DATA / relative
    if not path.exists():
        require_service(f"shared data {path}", "set KNAS_SHARED_DATA")
    return path
