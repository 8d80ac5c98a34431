"""Shared CLI plumbing: one-line errors, the store, and JSON output."""
from __future__ import annotations

import functools
import json
import sys
from typing import Any, Callable

import click
from pydantic import ValidationError

from knas.settings import get_settings

# Errors a user can fix; anything else is a bug and keeps its traceback.
USER_ERRORS: tuple[type[BaseException], ...] = (ValueError, FileNotFoundError, KeyError)


def describe(error: BaseException) -> str:
    if isinstance(error, ValidationError):
        first = error.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ())) or "spec"
        return f"{where}: {first.get('msg', error)}".replace("Value error, ", "")
    if isinstance(error, KeyError) and error.args:
        return str(error.args[0])
    return str(error)


def user_errors(fn: Callable) -> Callable:
    """Turn expected errors into one clear line and exit code 2, never a traceback."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except click.ClickException:
            raise
        except USER_ERRORS as error:
            raise click.ClickException(describe(error)) from None

    return wrapper


def ready_schema(url: str | None = None) -> None:
    """`models.ensure_schema` for a command: the embedded store is migrated; a service database whose schema
    is not this knas's stops the command with one line naming what to run (`knas db upgrade`), not a traceback."""
    from models import SchemaError, ensure_schema

    try:
        ensure_schema(url or get_settings().effective_database_url)
    except SchemaError as error:
        raise click.ClickException(str(error)) from None


def open_store():
    """The configured store, its schema ready (`ready_schema`)."""
    from models import Store

    url = get_settings().effective_database_url
    ready_schema(url)
    return Store(url, check_schema=False)


def print_json(data: Any) -> None:
    json.dump(data, sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")
