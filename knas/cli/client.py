"""`knas submit / status / results`: talk to a knas server over HTTP (see `knas serve`)."""
from __future__ import annotations

import functools
from typing import Any, Callable

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from knas.settings import get_settings

from .common import print_json, user_errors
from .render import console, job_details, ranking_table
from .search import build_spec, spec_options


def server_option(fn: Callable) -> Callable:
    return click.option("--server", default=lambda: get_settings().server, show_default="KNAS_SERVER or "
                        "http://127.0.0.1:8000", help="URL of the knas server")(fn)


def client_errors(fn: Callable) -> Callable:
    """Server messages and connection problems become one line and a non-zero exit, never a traceback."""
    from knas.client import KnasClientError

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except KnasClientError as error:
            raise click.ClickException(str(error)) from None

    return user_errors(wrapper)


def _client(server: str):
    from knas.client import KnasClient
    from knas.settings import get_settings

    return KnasClient(server, token=get_settings().client_token())


def watch_job(client, job_id: str) -> dict[str, Any]:
    """Progress bars (on stderr, so stdout stays parseable) until the job ends; returns its last state."""
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=Console(stderr=True)) as bars:
        scoring = bars.add_task("scoring", total=None)
        final = bars.add_task("final stage", total=None, visible=False)

        def update(job: dict[str, Any]) -> None:
            p = job["progress"]
            bars.update(scoring, total=p["candidates"], completed=p["scored"] + p["failed"],
                        description=f"[{job['status']}] scoring ({job['proxy']})")
            if job["top_k"] and (job.get("spec") or {}).get("final", {}).get("mode") != "none":
                bars.update(final, total=job["top_k"], completed=p["trained"] + p["training_failed"], visible=True,
                            description=f"[{job['status']}] final stage")

        return client.wait(job_id, on_update=update)


@click.command()
@spec_options
@server_option
@click.option("--watch", is_flag=True, help="follow the job until it ends (exit code 0 only if it succeeded)")
@client_errors
def submit(server: str, watch: bool, **options) -> None:
    """Submit a search job to a knas server and print its id."""
    spec = build_spec(**options)
    with _client(server) as client:
        job_id = client.submit(spec)["id"]
        click.echo(job_id)
        if watch:
            _finish(watch_job(client, job_id), as_json=False)


@click.command()
@click.argument("job_id")
@server_option
@click.option("--watch", is_flag=True, help="follow the job until it ends (exit code 0 only if it succeeded)")
@click.option("--json", "as_json", is_flag=True)
@client_errors
def status(job_id: str, server: str, watch: bool, as_json: bool) -> None:
    """Show a job's status and progress."""
    with _client(server) as client:
        job = watch_job(client, job_id) if watch else client.job(job_id)
    if watch:
        _finish(job, as_json)
    elif as_json:
        print_json(job)
    else:
        job_details(job)


def _finish(job: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print_json(job)
    else:
        job_details(job)
    if job["status"] != "succeeded":
        raise SystemExit(1)


@click.command()
@click.argument("job_id")
@server_option
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json"]), default="table", show_default=True)
@click.option("--limit", type=click.IntRange(1, 10_000), default=20, show_default=True, help="first N by rank")
@client_errors
def results(job_id: str, server: str, fmt: str, limit: int) -> None:
    """Print a job's ranking (best first)."""
    with _client(server) as client:
        if fmt == "csv":
            click.echo(client.candidates_csv(job_id, limit=limit), nl=False)
            return
        page = client.candidates(job_id, limit=limit)
        if fmt == "json":
            print_json(page)
            return
        job = client.job(job_id)
    console.print(ranking_table(page["data"], title=f"job {job['id'][:8]} ({job['status']}): "
                                                    f"first {len(page['data'])} of {page['count']} candidates"))
    winner = (job.get("result") or {}).get("winner")
    if winner:
        console.print(f"[bold green]winner[/bold green] #{winner['rank']} {winner['arch']} (index {winner['arch_index']})")
