"""`knas users`: tokens are printed once, stored only as a hash, and revocation takes effect."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from models import Store
from models.users import authenticate, hash_token


@pytest.fixture
def knas(tmp_path: Path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("KNAS_")}
    env.update(KNAS_HOME=str(tmp_path / "home"), KNAS_DATABASE_URL=f"sqlite:///{tmp_path / 'lab.db'}")

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "knas.cli.main", "users", *args], env=env,
                              capture_output=True, text=True, timeout=120)

    return run


def test_add_list_revoke_and_rotate(knas, tmp_path):
    added = knas("add", "alice", "--max-jobs", "2", "--max-candidates", "1000")
    assert added.returncode == 0, added.stderr
    token = added.stdout.strip()
    assert token.startswith("knas_") and len(token) > 40 and "shown only now" in added.stderr
    assert knas("add", "root", "--admin").returncode == 0

    db_bytes = (tmp_path / "lab.db").read_bytes()
    assert token.encode() not in db_bytes and hash_token(token).encode() in db_bytes  # only the hash is kept

    listed = json.loads(knas("list", "--json").stdout)
    assert [(u["name"], u["admin"], u["max_jobs"], u["max_candidates"], u["revoked_at"]) for u in listed] == [
        ("alice", False, 2, 1000, None), ("root", True, None, None, None)]
    table = knas("list").stdout
    assert "alice" in table and token not in table

    store = Store(f"sqlite:///{tmp_path / 'lab.db'}")
    principal, _ = authenticate(store, token)
    assert principal is not None and principal.name == "alice" and principal.max_jobs == 2

    assert knas("revoke", "alice").stdout.strip() == "revoked 'alice'"
    assert authenticate(store, token) == (None, True)
    assert "already revoked" in knas("revoke", "alice").stdout

    rotated = knas("token", "alice").stdout.strip()
    assert rotated != token and authenticate(store, rotated)[0].name == "alice"
    assert authenticate(store, token) == (None, False)  # the old token is gone for good
    store.dispose()


@pytest.mark.parametrize("args, message", [
    (("add", "alice"), "user 'alice' already exists"),
    (("add", "bad name!"), "invalid user name"),
    (("add", "zed", "--max-jobs", "0"), "--max-jobs must be at least 1"),
    (("revoke", "nobody"), "no user 'nobody'"),
    (("token", "nobody"), "no user 'nobody'"),
])
def test_mistakes_are_one_line_errors(knas, args, message):
    assert knas("add", "alice").returncode == 0
    result = knas(*args)
    assert result.returncode != 0 and message in result.stderr and "Traceback" not in result.stderr
