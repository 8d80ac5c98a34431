"""`knas serve`: the HTTP API under uvicorn.

With no KNAS_DATABASE_URL / KNAS_BROKER_URL it is the whole service in one
process (SQLite + an in-process queue); with both it is the API only and
Celery workers (`knas worker`) run the jobs.
"""
from __future__ import annotations

import os
import shutil
import tempfile
from contextlib import contextmanager
from typing import Any, Iterator

import click

from knas.settings import Settings, get_settings

from .common import ready_schema


def describe_mode(settings: Settings) -> str:
    """One line saying what this server will use (passwords hidden)."""
    from kombu.utils.url import maybe_sanitize_url
    from sqlalchemy.engine import make_url

    database = make_url(settings.effective_database_url).render_as_string(hide_password=True)
    if settings.embedded and not settings.broker_url:
        return (f"knas: embedded mode: SQLite at {settings.home / 'knas.db'}, jobs run in this process; "
                f"single local user 'local' (admin), API token in {settings.home / 'token'} "
                f"(set KNAS_DATABASE_URL and KNAS_BROKER_URL for the service)")
    if not settings.broker_url:
        return f"knas: database {database}, jobs run in this process (KNAS_BROKER_URL is not set)"
    return (f"knas: API only: database {database}, broker {maybe_sanitize_url(settings.broker_url)} "
            f"(run `knas worker`; every request needs a token from `knas users add`)")


EMBEDDED_ONE_PROCESS = (
    "--workers needs the service mode (KNAS_DATABASE_URL and KNAS_BROKER_URL set): without a broker the jobs "
    "run in a thread of the API process, and N processes would each run (and resume) the same jobs; the "
    "embedded SQLite store is meant for one writer. Run `knas worker` processes for more scoring instead")


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="interface to listen on (0.0.0.0 for all)")
@click.option("--port", type=click.IntRange(1, 65535), default=8000, show_default=True)
@click.option("--workers", type=click.IntRange(1, 64), default=1, show_default=True,
              help="API processes (service mode only: the embedded mode runs its jobs in the one API process)")
@click.option("--log-level", type=click.Choice(["critical", "error", "warning", "info", "debug"]), default="info",
              show_default=True)
def serve(host: str, port: int, workers: int, log_level: str) -> None:
    """Start the HTTP API (interactive docs at /docs on the embedded server; /openapi.json always).

    --workers N starts N API processes on one port (service mode: PostgreSQL + Redis). Failed logins are
    then counted in Redis and /metrics adds up every process's counters.
    """
    import uvicorn

    settings = get_settings()
    if workers > 1 and (settings.embedded or not settings.broker_url):
        raise click.UsageError(EMBEDDED_ONE_PROCESS)
    click.echo(describe_mode(settings), err=True)
    # Before any API process starts: the embedded store is migrated once, here (N processes would race); a
    # service database is checked, so a schema that is not this knas's is one line naming what to run.
    ready_schema(settings.effective_database_url)
    # X-Forwarded-For/-Proto are believed only from the proxies in KNAS_FORWARDED_ALLOW_IPS (default: none):
    # uvicorn's own default trusts 127.0.0.1, so anyone on the server host could pick their client address.
    trusted = settings.forwarded_allow_ips.strip()
    options: dict[str, Any] = dict(host=host, port=port, log_level=log_level, proxy_headers=bool(trusted),
                                   forwarded_allow_ips=trusted or None)
    if workers == 1:
        from api.main import create_app

        uvicorn.run(create_app(settings), **options)
        return
    with multiprocess_metrics() as directory:
        click.echo(f"knas: {workers} API processes; their metrics are added up from {directory}", err=True)
        # The processes import the app themselves (spawned interpreters): an import string and a factory.
        uvicorn.run("api.main:create_app", factory=True, workers=workers, **options)


@contextmanager
def multiprocess_metrics() -> Iterator[str]:
    """A private, empty PROMETHEUS_MULTIPROC_DIR for this server's processes, removed when it stops.

    Set before any worker starts (prometheus_client reads it at import); fresh every start, as
    prometheus_client requires (files of an earlier run would be added in).
    """
    directory = tempfile.mkdtemp(prefix="knas-metrics-")  # mode 0700
    previous = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory
    try:
        yield directory
    finally:
        if previous is None:
            os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
        else:
            os.environ["PROMETHEUS_MULTIPROC_DIR"] = previous
        shutil.rmtree(directory, ignore_errors=True)
