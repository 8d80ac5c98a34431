"""The API's hot reads: a candidate page in index order, and `Store.read` (async, autocommit on PostgreSQL).

Both backends are real: SQLite as embedded, PostgreSQL as on a lab server (pg_url makes a fresh
database per test; in CI a missing server fails the test).
"""
from __future__ import annotations

import asyncio
import random

import pytest
from sqlalchemy import create_engine, inspect, text

from models import Candidate, Job, Store, Training, migrate
from models.queries import ranked_candidates, ranked_candidates_query


@pytest.fixture(params=["sqlite", "postgresql"])
def any_store(request, tmp_path):
    url = f"sqlite:///{tmp_path / 'knas.db'}" if request.param == "sqlite" else request.getfixturevalue("pg_url")
    store = Store(url)
    yield store
    asyncio.run(store.dispose_async())
    store.dispose()


def seed_job(store: Store, n: int, ranked: int, seed: int = 0) -> str:
    """A job of `n` candidates, `ranked` of them with ranks 1..ranked in shuffled insertion order
    (so id order and rank order differ), the rest unranked; rank 1 has a training."""
    rng = random.Random(seed)
    ranks = list(range(1, ranked + 1)) + [None] * (n - ranked)
    rng.shuffle(ranks)
    with store.session() as session:
        job = Job(spec={}, space="nats-tss", dataset="digits", proxy="mgm", timings={})
        session.add(job)
        session.flush()
        rows = [Candidate(job_id=job.id, arch=f"arch-{i}", arch_index=i, seed=1, rank=rank,
                          status="scored" if rank else "pending", score=(n - rank) if rank else None)
                for i, rank in enumerate(ranks)]
        session.add_all(rows)
        session.flush()
        best = next(c for c in rows if c.rank == 1)
        session.add(Training(candidate_id=best.id, job_id=job.id, mode="train", status="done", valid_acc=0.5,
                             test_acc=0.25))
        return job.id


def reference_order(store: Store, job_id: str) -> list[int]:
    """Best first, unranked last, ties by id, sorted in Python from every row of the job."""
    with store.session() as session:
        rows = session.query(Candidate.id, Candidate.rank).filter(Candidate.job_id == job_id).all()
    return [row.id for row in sorted(rows, key=lambda r: (r.rank is None, r.rank or 0, r.id))]


def test_pages_follow_rank_then_id_with_unranked_last(any_store):
    job_id = seed_job(any_store, n=60, ranked=35)
    with any_store.session() as session:
        pages = [ranked_candidates(session, job_id, limit=7, offset=offset) for offset in range(0, 63, 7)]
    flat = [row["id"] for page in pages for row in page]
    assert flat == reference_order(any_store, job_id)
    assert pages[0][0]["rank"] == 1 and pages[0][0]["valid_acc"] == 0.5 and pages[0][0]["training_status"] == "done"
    assert all(row["training_status"] is None for page in pages for row in page if row["rank"] != 1)
    assert [row["rank"] for row in pages[-1]][-1] is None and pages[-1][-1]["score"] is None


def test_store_read_runs_a_function_on_a_connection(any_store):
    job_id = seed_job(any_store, n=12, ranked=5)

    async def both():
        page = await any_store.read(ranked_candidates, job_id, 5, 0)
        again = await any_store.read(ranked_candidates, job_id, 5, 5)
        return page, again

    page, again = asyncio.run(both())
    assert [row["id"] for row in page + again] == reference_order(any_store, job_id)[:10]


def test_store_read_survives_a_database_restart_of_its_connections(pg_url):
    """A pooled connection killed server-side (a PostgreSQL restart, a failover) is not pinged
    before use: the read that finds it dead runs once more on a fresh connection."""
    store = Store(pg_url)
    job_id = seed_job(store, n=8, ranked=8)

    def backend_pid(connection):
        return connection.execute(text("SELECT pg_backend_pid()")).scalar_one()

    async def scenario():
        first = await store.read(backend_pid)
        with store.engine.connect() as admin:  # every async-pool connection, as a restart would
            admin.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                               "WHERE datname = current_database() AND pid <> pg_backend_pid()"))
            admin.commit()
        page = await store.read(ranked_candidates, job_id, 3, 0)
        second = await store.read(backend_pid)
        await store.dispose_async()
        return first, page, second

    try:
        first, page, second = asyncio.run(scenario())
    finally:
        store.dispose()
    assert [row["rank"] for row in page] == [1, 2, 3]
    assert second != first  # it really ran on a new connection


def test_store_read_is_autocommit_on_postgresql(pg_url):
    """No BEGIN/COMMIT round trips around a status poll: the connection is in autocommit."""
    store = Store(pg_url)

    def driver_autocommit(connection):
        return connection.connection.driver_connection.autocommit  # psycopg's own flag: no implicit BEGIN

    try:
        assert asyncio.run(_read_then_dispose(store, driver_autocommit)) is True
    finally:
        store.dispose()


async def _read_then_dispose(store: Store, fn):
    try:
        return await store.read(fn)
    finally:
        await store.dispose_async()


def test_migration_0010_indexes_pages_and_postgres_reads_them_off_the_index(pg_url):
    """EXPLAIN ANALYZE at 15,625 candidates (a whole NAS-Bench-201 job): an index scan, no sort."""
    store = Store(pg_url)
    try:
        indexes = {ix["name"]: ix["column_names"] for ix in inspect(store.engine).get_indexes("candidates")}
        assert indexes["ix_candidates_job_rank"] == ["job_id", "rank", "id"]
        job_id = seed_job(store, n=15_625, ranked=9_000)
        seed_job(store, n=2_000, ranked=2_000, seed=1)  # another job in the same table
        with store.engine.connect() as connection:
            connection.execute(text("ANALYZE candidates"))
            connection.commit()
            for offset in (0, 8_990):  # the first page, and one that crosses into the unranked rows
                compiled = ranked_candidates_query(job_id, 25, offset).compile(
                    dialect=store.engine.dialect, compile_kwargs={"literal_binds": True})
                plan = "\n".join(connection.execute(text(f"EXPLAIN ANALYZE {compiled}")).scalars())
                assert "Index Scan using ix_candidates_job_rank" in plan, plan
                assert "Sort" not in plan, plan  # the rows come off the index in page order
    finally:
        store.dispose()


def test_migration_0010_downgrades_and_upgrades(sqlite_url):
    from alembic import command

    from models.db import alembic_config

    migrate(sqlite_url)
    command.downgrade(alembic_config(sqlite_url), "0009")
    engine = create_engine(sqlite_url)
    columns = {ix["name"]: ix["column_names"] for ix in inspect(engine).get_indexes("candidates")}
    engine.dispose()
    assert columns["ix_candidates_job_rank"] == ["job_id", "rank"]
    migrate(sqlite_url)
    engine = create_engine(sqlite_url)
    columns = {ix["name"]: ix["column_names"] for ix in inspect(engine).get_indexes("candidates")}
    engine.dispose()
    assert columns["ix_candidates_job_rank"] == ["job_id", "rank", "id"]
