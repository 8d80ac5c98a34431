"""Engines, sessions and schema upgrades for SQLite (embedded) and PostgreSQL."""
from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, TypeVar

from sqlalchemy import Engine, create_engine, event
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


def upgrade(url: str, revision: str = "head") -> None:
    """Apply migrations: the only way the schema changes."""
    from alembic import command

    private_sqlite_file(url)
    command.upgrade(alembic_config(url), revision)


class Store:
    """One database: an engine plus a session factory. Cheap to pass around."""

    def __init__(self, url: str, migrate: bool = True, **engine_kwargs) -> None:
        self.url = url
        if migrate:
            upgrade(url)
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
