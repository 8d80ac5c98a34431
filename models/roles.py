"""Least privilege for workers: a PostgreSQL role that can run jobs and nothing else.

Workers run on GPU nodes that users can log in to; with the API's database URL, anyone there could
`knas users add x --admin`. The worker role reads and writes only the tables jobs touch, may read
the schema version (to refuse running against a schema it does not know), has no access to
`users` (token hashes) and cannot change the schema. The operator creates it once, as the
database owner, with `knas db roles` (after `knas db upgrade`, and again after an upgrade that adds
tables), and gives workers its URL.
"""
from __future__ import annotations

import re

from sqlalchemy import text
from sqlalchemy.engine import make_url

from .db import make_engine

# table -> privileges of the worker role (everything else, `users` first of all: nothing)
WORKER_TABLES = {
    "jobs": "SELECT, UPDATE",
    "candidates": "SELECT, INSERT, UPDATE",
    "trainings": "SELECT, INSERT, UPDATE",
    "workers": "SELECT, INSERT, UPDATE, DELETE",
    "score_cache": "SELECT, INSERT, UPDATE",
    "datasets": "SELECT",
    "alembic_version": "SELECT",
}
ROLE_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def create_worker_role(owner_url: str, role: str, password: str | None) -> str:
    """Create (or update) the worker role and its grants; returns the URL workers should use."""
    if not ROLE_NAME.match(role):
        raise ValueError(f"role name {role!r}: use lower-case letters, digits and '_' (at most 63)")
    url = make_url(owner_url)
    if url.get_backend_name() != "postgresql":
        raise ValueError("worker roles are a PostgreSQL feature; the embedded SQLite store has no users to keep apart")
    engine = make_engine(owner_url)
    try:
        with engine.begin() as connection:
            exists = connection.execute(text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": role}).first()
            if not exists:
                connection.execute(text(f'CREATE ROLE "{role}" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE'))
            if password is not None:
                literal = connection.execute(text("SELECT quote_literal(:p)"), {"p": password}).scalar_one()
                connection.execute(text(f'ALTER ROLE "{role}" PASSWORD {literal}'))
            database = url.database
            connection.execute(text(f'GRANT CONNECT ON DATABASE "{database}" TO "{role}"'))
            connection.execute(text(f'GRANT USAGE ON SCHEMA public TO "{role}"'))
            connection.execute(text(f'REVOKE CREATE ON SCHEMA public FROM "{role}"'))
            connection.execute(text(f'REVOKE ALL ON ALL TABLES IN SCHEMA public FROM "{role}"'))
            for table, privileges in WORKER_TABLES.items():
                connection.execute(text(f'GRANT {privileges} ON TABLE "{table}" TO "{role}"'))
            serial = ("jobs", "candidates", "trainings", "workers", "datasets")  # tables with an `id` sequence
            for table in serial:  # the id sequences of the tables it inserts into
                sequence = connection.execute(text("SELECT pg_get_serial_sequence(:t, 'id')"), {"t": table}).scalar()
                if sequence:
                    connection.execute(text(f'GRANT USAGE, SELECT ON SEQUENCE {sequence} TO "{role}"'))
    finally:
        engine.dispose()
    return url.set(username=role, password=password).render_as_string(hide_password=True)
