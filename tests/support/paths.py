"""Where things are: the repository root (every subprocess runs from it) and the shared data folder."""
from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# ../shared/data beside the checkout; KNAS_SHARED_DATA overrides it (CI sets it).
SHARED_DATA = Path(os.environ.get("KNAS_SHARED_DATA", REPO.parent / "shared" / "data"))
