"""`knas serve`: the HTTP API under uvicorn.

With no KNAS_DATABASE_URL / KNAS_BROKER_URL it is the whole service in one
process (SQLite + an in-process queue); with both it is the API only and
Celery workers (`knas worker`) run the jobs.
"""
from __future__ import annotations

import click

from knas.settings import Settings, get_settings


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


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="interface to listen on (0.0.0.0 for all)")
@click.option("--port", type=click.IntRange(1, 65535), default=8000, show_default=True)
@click.option("--log-level", type=click.Choice(["critical", "error", "warning", "info", "debug"]), default="info",
              show_default=True)
def serve(host: str, port: int, log_level: str) -> None:
    """Start the HTTP API (interactive docs at /docs on the embedded server; /openapi.json always)."""
    import uvicorn

    from api.main import create_app

    settings = get_settings()
    click.echo(describe_mode(settings), err=True)
    # One process: the embedded queue is a thread of this process, so no --workers here.
    # X-Forwarded-For/-Proto are believed only from the proxies in KNAS_FORWARDED_ALLOW_IPS (default: none):
    # uvicorn's own default trusts 127.0.0.1, so anyone on the server host could pick their client address.
    trusted = settings.forwarded_allow_ips.strip()
    uvicorn.run(create_app(settings), host=host, port=port, log_level=log_level,
                proxy_headers=bool(trusted), forwarded_allow_ips=trusted or None)
