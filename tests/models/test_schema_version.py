"""The schema is migrated in one place and checked everywhere else.

`models.migrate` (what `knas db upgrade` runs) is the only thing that changes it, under a PostgreSQL
advisory lock; the embedded SQLite store migrates itself on open; in service mode (PostgreSQL) the
API, the workers and the `knas` commands check the revision on open and stop with one line: the
revision found, the one expected, and what to run.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from models import SchemaError, Store, migrate
from models.db import MIGRATION_LOCK, check_schema, head_revision
from tests.support.paths import REPO
from tests.support.waiting import wait_for

OLDER = "0009"  # a revision before head: a database the previous release left


def knas(*args: str, url: str, home: Path, **env: str) -> subprocess.Popen:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("KNAS_")}
    environ.update(KNAS_DATABASE_URL=url, KNAS_HOME=str(home), KNAS_DEVICE="cpu", **env)
    return subprocess.Popen([sys.executable, "-m", "knas.cli.main", *args], env=environ, cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def finished(proc: subprocess.Popen, timeout: float = 120) -> tuple[int, str]:
    out, _ = proc.communicate(timeout=timeout)
    return proc.returncode, out


def set_revision(url: str, revision: str) -> None:
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = :r"), {"r": revision})
    engine.dispose()


def revisions_in(url: str) -> list[str]:
    engine = create_engine(url)
    with engine.connect() as connection:
        rows = list(connection.execute(text("SELECT version_num FROM alembic_version")).scalars())
    engine.dispose()
    return rows


# ---------------------------------------------------------------- the check

def test_a_service_database_is_checked_on_open_never_migrated(empty_pg_url):
    with pytest.raises(SchemaError) as empty:
        Store(empty_pg_url)
    message = str(empty.value)
    assert "has no knas schema yet" in message and head_revision() in message and "`knas db upgrade`" in message
    assert "\n" not in message and "postgres@" in message  # one line, naming the database (no password)
    assert not any("alembic_version" in name for name in _tables(empty_pg_url))  # opening it changed nothing

    assert migrate(empty_pg_url, OLDER) == (None, OLDER)
    with pytest.raises(SchemaError, match=f"is at schema revision {OLDER}; this knas expects revision "
                                          f"{head_revision()}: run `knas db upgrade`"):
        check_schema(empty_pg_url)
    assert migrate(empty_pg_url) == (OLDER, head_revision())
    Store(empty_pg_url).dispose()  # at head: opens
    assert migrate(empty_pg_url) == (head_revision(), head_revision())  # nothing left to do


def test_a_database_a_newer_knas_upgraded_is_refused_not_downgraded(pg_url, sqlite_url):
    for url in (pg_url, sqlite_url):
        migrate(url)
        set_revision(url, "9999_from_the_future")
        with pytest.raises(SchemaError, match="9999_from_the_future, which this knas .* does not know: a newer knas"):
            Store(url)  # SQLite too: the embedded store migrates itself, but never over a newer schema
        with pytest.raises(SchemaError, match="does not know"):
            migrate(url)
        assert revisions_in(url) == ["9999_from_the_future"]


def test_the_embedded_store_migrates_itself_on_open(sqlite_url):
    Store(sqlite_url).dispose()
    assert revisions_in(sqlite_url) == [head_revision()]


def _tables(url: str) -> list[str]:
    from sqlalchemy import inspect

    engine = create_engine(url)
    try:
        return inspect(engine).get_table_names()
    finally:
        engine.dispose()


# ---------------------------------------------------------------- service processes stop with one line

def _one_line_refusal(code: int, out: str, found: str, who: str = "") -> None:
    assert code != 0, (who, out)
    assert "Traceback" not in out, (who, out)
    lines = [line for line in out.splitlines() if "knas db upgrade" in line]
    assert len(lines) == 1, (who, out)
    assert found in lines[0] and head_revision() in lines[0], (who, out)


def test_service_processes_on_an_old_schema_stop_with_what_to_run(empty_pg_url, tmp_path):
    migrate(empty_pg_url, OLDER)
    broker = {"KNAS_BROKER_URL": "redis://127.0.0.1:6379/15"}  # never reached: they stop before
    started = {
        "serve": knas("serve", "--port", "1", url=empty_pg_url, home=tmp_path / "api", **broker),
        "worker": knas("worker", "--device", "cpu", url=empty_pg_url, home=tmp_path / "worker", **broker),
        "users": knas("users", "add", "alice", url=empty_pg_url, home=tmp_path / "cli"),
    }
    for name, proc in started.items():
        code, out = finished(proc)
        _one_line_refusal(code, out, f"revision {OLDER}", who=name)
    assert revisions_in(empty_pg_url) == [OLDER]  # nobody migrated it behind the operator's back


def test_a_celery_node_started_directly_on_an_empty_database_stops_with_what_to_run(empty_pg_url, tmp_path):
    environ = {k: v for k, v in os.environ.items() if not k.startswith("KNAS_")}
    environ.update(KNAS_DATABASE_URL=empty_pg_url, KNAS_BROKER_URL="redis://127.0.0.1:6379/15",
                   KNAS_HOME=str(tmp_path), KNAS_DEVICE="cpu")
    done = subprocess.run([sys.executable, "-m", "celery", "-A", "worker.celery_app", "worker", "--pool", "solo",
                           "--loglevel", "WARNING"], env=environ, cwd=REPO, capture_output=True, text=True, timeout=120)
    _one_line_refusal(done.returncode, done.stdout + done.stderr, "has no knas schema yet")


# ---------------------------------------------------------------- `knas db upgrade`, twice at once

def test_two_upgrades_at_once_migrate_once(empty_pg_url, tmp_path):
    """Both wait on the advisory lock (held here first), then one upgrades and the other finds nothing to do."""
    engine = create_engine(empty_pg_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as holder:
        holder.execute(text("SELECT pg_advisory_lock(:key)"), {"key": MIGRATION_LOCK})
        upgrades = [knas("db", "upgrade", url=empty_pg_url, home=tmp_path / str(i)) for i in range(2)]
        def queued() -> bool:
            assert all(p.poll() is None for p in upgrades), [finished(p) for p in upgrades]
            return _waiting_for_the_lock(holder) >= 2

        wait_for(queued, 60, "the two upgrades to queue on the migration lock", interval=0.1)
        holder.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK})
    engine.dispose()
    outputs = [finished(p) for p in upgrades]
    assert [code for code, _ in outputs] == [0, 0], outputs
    said = sorted("upgraded from schema revision none (empty)" in out for _, out in outputs)
    assert said == [False, True], outputs  # exactly one of them migrated
    assert any(f"is up to date (schema revision {head_revision()})" in out for _, out in outputs), outputs
    assert revisions_in(empty_pg_url) == [head_revision()]


def _waiting_for_the_lock(connection) -> int:
    return connection.execute(text(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = :key AND NOT granted "
        "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"),
        {"key": MIGRATION_LOCK}).scalar_one()
