"""Where the tests find ../shared/data (override with KNAS_SHARED_DATA)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("KNAS_SHARED_DATA", REPO.parent / "shared" / "data"))


def require_shared(relative: str) -> Path:
    """A path under ../shared/data; missing is a skip locally and a failure in CI."""
    path = SHARED_DATA / relative
    if not path.exists():
        if os.environ.get("CI"):
            pytest.fail(f"CI: shared data {path} is missing (set KNAS_SHARED_DATA)")
        pytest.skip(f"no shared data at {path} (set KNAS_SHARED_DATA)")
    return path
