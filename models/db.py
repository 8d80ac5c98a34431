"""Engines, sessions and the schema for SQLite (embedded) and PostgreSQL (the service).

The schema changes in one place: `migrate`, under a PostgreSQL advisory lock. Who calls it:
- the embedded store (SQLite under KNAS_HOME, one process on a laptop) migrates itself on open, so
  `knas search` / `knas serve` work with nothing to configure;
- a service database (PostgreSQL) is migrated by `knas db upgrade` only, run once per release before
  the API and the workers start (docker-compose.yml's `migrate` job). The API, the workers and the
  `knas` commands only check its revision on open and stop with `SchemaError`, one line saying what
  was found, what is expected and what to run (optuna: the version is checked on open; upgrading
  is an explicit command).
"""
from __future__ import annotations

import functools
import os
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, TypeVar

from sqlalchemy import Engine, create_engine, event, pool, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

T = TypeVar("T")

MIGRATIONS_DIR = Path(__file__).resolve().parent.parent / "migrations"


def private_sqlite_file(url: str) -> None:
    """Create an SQLite store file owner-only: its directory (KNAS_HOME) 0700, the file 0600.

    The store holds everyone's jobs and token hashes; SQLite itself would create it with the umask's
    mode (usually world-readable). A store file we own that is group/world-accessible is tightened.
    Its -wal/-shm files take the database file's mode.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or not parsed.database or parsed.database == ":memory:" \
            or parsed.database.startswith("file:"):
        return
    path = Path(parsed.database).expanduser()
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    except FileExistsError:
        info = path.stat()
        if info.st_uid == os.getuid() and info.st_mode & 0o077:
            path.chmod(info.st_mode & 0o700)


def make_engine(url: str, **kwargs) -> Engine:
    """An engine with per-backend defaults: WAL + FK checks on SQLite, a checked pool elsewhere."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        private_sqlite_file(url)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30}, **kwargs)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        return engine
    kwargs.setdefault("pool_pre_ping", True)
    if "poolclass" not in kwargs:
        kwargs.setdefault("pool_size", 5)
        kwargs.setdefault("max_overflow", 10)
    return create_engine(url, **kwargs)


def alembic_config(url: str):
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


# ---------------------------------------------------------------- the schema's revision

MIGRATION_LOCK = 424242  # pg_advisory_lock key held while `migrate` runs: one upgrade at a time
UPGRADE_COMMAND = "knas db upgrade"


class SchemaError(RuntimeError):
    """The database's schema is not the one this knas expects; the message says what to run."""


@functools.lru_cache(maxsize=1)
def _revisions() -> tuple[str, frozenset[str]]:
    """(head, every revision) of this knas's migrations; read once per process."""
    from alembic.script import ScriptDirectory

    script = ScriptDirectory(str(MIGRATIONS_DIR))
    return script.get_current_head() or "", frozenset(r.revision for r in script.walk_revisions())


def head_revision() -> str:
    """The revision this knas's models are: what `migrate` upgrades to and `check_schema` expects."""
    return _revisions()[0]


def current_revision(connection) -> str | None:
    """The database's revision (None: no knas schema yet)."""
    from alembic.runtime.migration import MigrationContext

    return MigrationContext.configure(connection).get_current_revision()


def _where(url: str) -> str:
    return make_url(url).render_as_string(hide_password=True)


def _unknown(url: str, found: str) -> SchemaError:
    return SchemaError(
        f"the database {_where(url)} is at schema revision {found}, which this knas (revision {head_revision()}) "
        "does not know: a newer knas upgraded it; run that version of knas here")


def schema_error(url: str, found: str | None) -> SchemaError | None:
    """What is wrong with a database at revision `found` for this knas (None: nothing)."""
    head, known = _revisions()
    if found == head:
        return None
    if found is not None and found not in known:
        return _unknown(url, found)
    what = "has no knas schema yet" if found is None else f"is at schema revision {found}"
    return SchemaError(f"the database {_where(url)} {what}; this knas expects revision {head}: "
                       f"run `{UPGRADE_COMMAND}` (as the database owner) first")


def check_schema(url: str) -> None:
    """Raise `SchemaError` unless the database is at this knas's head revision (reads, never writes)."""
    engine = make_engine(url, poolclass=pool.NullPool)
    try:
        with engine.connect() as connection:
            error = schema_error(url, current_revision(connection))
    finally:
        engine.dispose()
    if error is not None:
        raise error


def migrate(url: str, revision: str = "head") -> tuple[str | None, str | None]:
    """Upgrade the schema to `revision`: the only thing that runs migrations. Returns (before, after).

    On PostgreSQL under a session advisory lock (`MIGRATION_LOCK`), so `knas db upgrade` run twice
    at once (two deploys, a retried job) upgrades once: the second waits, then finds the schema at
    head and does nothing. SQLite (the embedded store: one process) needs no lock. A database a newer
    knas upgraded, or a connection that may not change the schema, is a `SchemaError`.
    """
    private_sqlite_file(url)
    engine = make_engine(url, poolclass=pool.NullPool)
    postgres = engine.dialect.name == "postgresql"
    try:
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as lock:
            if postgres:
                lock.execute(text("SELECT pg_advisory_lock(:key)"), {"key": MIGRATION_LOCK})
            try:
                before = current_revision(lock)
                if before is not None and before not in _revisions()[1]:
                    raise _unknown(url, before)
                target = head_revision() if revision == "head" else revision
                if before != target:
                    _upgrade(url, revision)
                return before, current_revision(lock)
            finally:
                if postgres:
                    lock.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK})
    finally:
        engine.dispose()


def _upgrade(url: str, revision: str) -> None:
    from alembic import command
    from sqlalchemy.exc import ProgrammingError

    try:
        command.upgrade(alembic_config(url), revision)
    except ProgrammingError as error:  # e.g. the least-privilege worker role: no DDL
        raise SchemaError(
            f"this connection to {_where(url)} may not change the schema ({type(error.orig).__name__}): "
            f"run `{UPGRADE_COMMAND}` as the database owner") from None


def ensure_schema(url: str) -> None:
    """What opening a store does to its schema: the embedded SQLite store is migrated (one process on a
    laptop, nothing to configure); a service database is only checked (`SchemaError` when it is not
    at head: `knas db upgrade` migrates it)."""
    if make_url(url).get_backend_name() == "sqlite":
        migrate(url)
    else:
        check_schema(url)


class Store:
    """One database: an engine plus a session factory. Cheap to pass around."""

    def __init__(self, url: str, check_schema: bool = True, **engine_kwargs) -> None:
        """`check_schema`: `ensure_schema` on open (the embedded store is migrated, a service one checked);
        False where this process already did (a worker's pool child, after its node's start-up check)."""
        self.url = url
        if check_schema:
            ensure_schema(url)
        self.engine = make_engine(url, **engine_kwargs)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._async_engine: AsyncEngine | None = None

    @property
    def backend(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session that commits on success and rolls back on error."""
        with self._sessions() as session:
            try:
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                raise

    async def read(self, fn: Callable[..., T], *args: Any) -> T:
        """`fn(connection, *args)` from async code, for the API's hot reads (a Core `Connection`).

        On PostgreSQL `fn` runs on the event loop itself: an async psycopg engine, on which SQLAlchemy
        runs the same sync code under a greenlet, in autocommit (no BEGIN/COMMIT round trips, no
        threadpool hand-off). Each statement then has its own snapshot: `fn` should not rely on two
        of its queries seeing one instant. Instead of pinging every connection it takes from the pool
        (a round trip per request), a read that finds its connection dead (the database restarted) is
        run once more on a fresh one. Elsewhere (SQLite: one file, one process) `fn` runs in a worker
        thread on an ordinary connection.
        """
        if self.backend != "postgresql":
            import anyio.to_thread

            return await anyio.to_thread.run_sync(self._read_sync, fn, *args)
        if self._async_engine is None:
            from sqlalchemy.ext.asyncio import create_async_engine

            url = make_url(self.url).set(drivername="postgresql+psycopg")  # psycopg 3 is async as well
            self._async_engine = create_async_engine(url, pool_size=10, max_overflow=10, pool_recycle=3600,
                                                     isolation_level="AUTOCOMMIT")
        from sqlalchemy.exc import DBAPIError

        for attempt in (1, 2):
            try:
                async with self._async_engine.connect() as connection:
                    return await connection.run_sync(fn, *args)
            except DBAPIError as error:
                if attempt == 2 or not error.connection_invalidated:
                    raise
        raise AssertionError("unreachable")

    def _read_sync(self, fn: Callable[..., T], *args: Any) -> T:
        with self.engine.connect() as connection:
            return fn(connection, *args)

    async def dispose_async(self) -> None:
        """Close the async engine `read` opened (it belongs to the event loop that opened it)."""
        if self._async_engine is not None:
            await self._async_engine.dispose()
            self._async_engine = None

    def dispose(self) -> None:
        self.engine.dispose()
