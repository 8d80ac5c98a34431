"""The database's clock: every lease, heartbeat and progress clock is written and compared with it.

Hosts' clocks differ (a GPU node without NTP, a VM resumed from suspend): a worker whose clock runs
an hour behind would write heartbeats that every other node sees as an hour old, and a sweeper
whose clock runs ahead would find every lease expired. So the store writes its lease columns
(`jobs.updated_at`, `jobs.swept_at`, `trainings.heartbeat_at`, `workers.last_seen`) with `db_now()`
and compares them with `db_ago(seconds)` in SQL, both evaluated by the database, never by the host
(optuna's heartbeats compare against the database's `now()` the same way).

Values are naive UTC, like every other `DateTime` column of the store:
- PostgreSQL: `statement_timestamp() AT TIME ZONE 'UTC'`, microseconds, whatever the server's
  TimeZone. Per statement, as SQLite's 'now' is (`now()` is the transaction's start: a heartbeat
  written at the end of a long transaction would carry its beginning).
- SQLite: `strftime('%Y-%m-%d %H:%M:%f', 'now')`, UTC with milliseconds (leases of a few seconds,
  heartbeats every second need better than CURRENT_TIMESTAMP's whole seconds), plus '000': the six
  fractional digits SQLAlchemy writes, so the text compares (and sorts) right against values
  written from Python.
"""
from __future__ import annotations

from typing import Any

from sqlalchemy import DateTime, Float, literal
from sqlalchemy.exc import CompileError
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement

_SQLITE_FORMAT = "'%Y-%m-%d %H:%M:%f'"
_PG_NOW = "(statement_timestamp() AT TIME ZONE 'UTC')"


class db_now(FunctionElement):  # noqa: N801 - reads as a SQL function, like func.now()
    """The database's current time (naive UTC), evaluated where the statement runs."""

    type = DateTime()
    name = "db_now"
    inherit_cache = True


class db_ago(FunctionElement):  # noqa: N801
    """The database's time `seconds` ago: `column < db_ago(lease)` is "older than the lease"."""

    type = DateTime()
    name = "db_ago"
    inherit_cache = True

    def __init__(self, seconds: float) -> None:
        super().__init__(literal(float(seconds), Float()))


def _seconds(element: db_ago, compiler: Any, **kw: Any) -> str:
    return compiler.process(next(iter(element.clauses)), **kw)


@compiles(db_now, "postgresql")
def _now_postgresql(element: db_now, compiler: Any, **kw: Any) -> str:
    return _PG_NOW


@compiles(db_ago, "postgresql")
def _ago_postgresql(element: db_ago, compiler: Any, **kw: Any) -> str:
    return f"({_PG_NOW} - make_interval(secs => {_seconds(element, compiler, **kw)}))"


@compiles(db_now, "sqlite")
def _now_sqlite(element: db_now, compiler: Any, **kw: Any) -> str:
    return f"(strftime({_SQLITE_FORMAT}, 'now') || '000')"


@compiles(db_ago, "sqlite")
def _ago_sqlite(element: db_ago, compiler: Any, **kw: Any) -> str:
    modifier = f"printf('%+.6f seconds', -({_seconds(element, compiler, **kw)}))"
    return f"(strftime({_SQLITE_FORMAT}, 'now', {modifier}) || '000')"


@compiles(db_now)
@compiles(db_ago)
def _unsupported(element: FunctionElement, compiler: Any, **kw: Any) -> str:
    raise CompileError(f"the store's clock is defined for SQLite and PostgreSQL, not {compiler.dialect.name}")
