"""Alembic migrations: the only way the store's schema changes (`knas db upgrade`)."""
