"""The least-privilege worker role on the real PostgreSQL server: it runs a whole job, and cannot
read token hashes, create users or change the schema."""
from __future__ import annotations

import os
import subprocess
import sys
import uuid

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ProgrammingError

from knas.jobspec import JobSpec
from models import Store
from models.roles import create_worker_role
from models.users import add_user
from worker import jobs, runner
from worker.runtime import Runtime


@pytest.fixture
def worker_url(pg_url):
    owner = Store(pg_url)  # pg_url is at head: the owner migrated it, as `knas db upgrade` does
    add_user(owner, "alice", admin=True)
    owner.dispose()
    role = f"knasw_{uuid.uuid4().hex[:10]}"
    url = create_worker_role(pg_url, role, password="not-the-owners")
    assert make_url(url).username == role and make_url(url).database == make_url(pg_url).database
    yield make_url(pg_url).set(username=role, password="not-the-owners").render_as_string(hide_password=False)
    engine = create_engine(pg_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(text(f'DROP OWNED BY "{role}"'))
        connection.execute(text(f'DROP ROLE "{role}"'))
    engine.dispose()


@pytest.mark.parametrize("statement", [
    "SELECT token_hash FROM users",
    "INSERT INTO users (name, token_hash, admin, created_at) VALUES ('mallory', 'x', true, now())",
    "UPDATE users SET admin = true",
    "CREATE TABLE loot (x int)",
    "ALTER TABLE jobs ADD COLUMN loot int",
    "DROP TABLE candidates",
])
def test_the_worker_role_cannot_touch_users_or_the_schema(worker_url, statement):
    engine = create_engine(worker_url)
    try:
        with pytest.raises(ProgrammingError, match="permission denied|must be owner"):
            with engine.begin() as connection:
                connection.execute(text(statement))
    finally:
        engine.dispose()


def test_knas_users_add_fails_with_the_worker_url(worker_url, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("KNAS_")}
    env.update(KNAS_DATABASE_URL=worker_url, KNAS_HOME=str(tmp_path))
    done = subprocess.run([sys.executable, "-m", "knas.cli.main", "users", "add", "mallory", "--admin"], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode != 0 and "permission denied" in (done.stdout + done.stderr).lower()


def test_the_worker_role_runs_a_whole_job(pg_url, worker_url, tmp_path):
    from worker.celery_app import check_store

    check_store(worker_url)  # at head: a worker's start-up check passes with read access to alembic_version only
    owner = Store(pg_url)
    spec = JobSpec.model_validate({"space": "nats-tss", "dataset": "tiny", "candidates": {"strategy": "random", "n": 4},
                                   "proxy": {"name": "mgm", "batch_size": 8}, "seed": 9, "top_k": 1,
                                   "final": {"mode": "train", "epochs": 1, "retrain_epochs": 1}})
    job_id = jobs.create_job(owner, spec)  # the API (the owner's URL) creates jobs
    worker = Store(worker_url, check_schema=False)
    runtime = Runtime(device="cpu", worker_name="w@node", artifact_dir=tmp_path / "artifacts")
    assert runner.run_job(worker, runtime, job_id) == "succeeded"
    assert jobs.job_status(owner, job_id) == "succeeded"
    worker.dispose()
    owner.dispose()
