"""Declarative base and shared column helpers."""
from __future__ import annotations

import uuid
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import CursorResult, Executable, MetaData, Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import DeclarativeBase

if TYPE_CHECKING:
    from sqlalchemy import Connection
    from sqlalchemy.orm import Session

# Stable constraint names, so migrations and autogenerate agree on every backend.
NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


def utcnow() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)


def changed(session: "Session | Connection", statement: Executable, params: Any = None) -> int:
    """Rows an UPDATE/DELETE changed, on a Session or a Connection (`execute` is typed as a plain
    Result there, whose `rowcount` only a cursor result has)."""
    return cast(CursorResult, session.execute(statement, params)).rowcount


def table(entity: Any) -> Table:
    """The mapped class's Table (declarative types `__table__` as a FromClause), for Core statements."""
    return cast(Table, entity.__table__)


def upsert(session: "Session", entity: Any) -> postgresql.Insert | sqlite.Insert:
    """INSERT into `entity`'s table with the session's dialect's ON CONFLICT clauses
    (`on_conflict_do_nothing` / `on_conflict_do_update`): the store runs on PostgreSQL and SQLite."""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        return postgresql.insert(entity)
    if dialect == "sqlite":
        return sqlite.insert(entity)
    raise RuntimeError(f"no upsert for {dialect}: the store runs on PostgreSQL and SQLite")  # pragma: no cover


def new_id() -> str:
    return str(uuid.uuid4())
