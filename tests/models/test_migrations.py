"""Migrations are the only way the schema changes: they must build exactly what the models declare."""
from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from models import Base, Store, make_engine, migrate


def test_upgrade_builds_every_table(sqlite_url):
    migrate(sqlite_url)
    engine = make_engine(sqlite_url)
    assert {"jobs", "candidates", "trainings", "workers", "alembic_version"} <= set(inspect(engine).get_table_names())
    engine.dispose()


def test_models_and_migrations_agree(sqlite_url):
    migrate(sqlite_url)
    engine = make_engine(sqlite_url)
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        diff = compare_metadata(context, Base.metadata)
    engine.dispose()
    assert diff == [], f"models differ from migrations; write a migration: {diff}"


def test_upgrade_is_idempotent_and_store_opens_existing_db(sqlite_url):
    Store(sqlite_url).dispose()
    Store(sqlite_url).dispose()  # running migrations again on an up-to-date db is a no-op
    migrate(sqlite_url)


def test_candidate_is_stored_once_per_job_and_arch(store):
    import pytest
    from sqlalchemy.exc import IntegrityError

    from models import Candidate, Job

    with store.session() as s:
        job = Job(spec={}, space="nats-tss", dataset="digits", proxy="mgm", timings={})
        s.add(job)
        s.flush()
        job_id = job.id
        s.add(Candidate(job_id=job_id, arch="a", arch_index=0, seed=1))
    with pytest.raises(IntegrityError):
        with store.session() as s:
            s.add(Candidate(job_id=job_id, arch="a", arch_index=0, seed=1))
