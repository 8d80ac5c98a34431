"""`knas jobs ...` and `knas db ...`: read and manage the store."""
from __future__ import annotations

import click

from knas.settings import get_settings

from .common import open_store, print_json, user_errors
from .render import console, job_details, jobs_table, ranking_table


@click.group()
def jobs() -> None:
    """List and inspect jobs in the store."""


@jobs.command("list")
@click.option("--status", default=None, help="only jobs in this state")
@click.option("--limit", type=click.IntRange(1, 1000), default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True)
@user_errors
def list_(status: str | None, limit: int, as_json: bool) -> None:
    from models.queries import job_summary, list_jobs

    store = open_store()
    with store.session() as session:
        rows, total = list_jobs(session, status=status, limit=limit)
        summaries = [job_summary(job) for job in rows]
    if as_json:
        print_json({"data": summaries, "count": total})
    elif not summaries:
        console.print("no jobs yet: run `knas search` to start one")
    else:
        console.print(jobs_table(summaries))


@jobs.command("show")
@click.argument("job_id")
@click.option("--candidates", "n", type=int, default=0, help="also list the first N ranked candidates")
@click.option("--json", "as_json", is_flag=True)
@user_errors
def show(job_id: str, n: int, as_json: bool) -> None:
    from models.queries import find_job, job_summary, ranked_candidates

    store = open_store()
    with store.session() as session:
        job = find_job(session, job_id)
        if job is None:
            raise click.ClickException(f"no job {job_id!r}; `knas jobs list` shows the ids")
        summary = job_summary(job)
        ranked = ranked_candidates(session, job.id, limit=n) if n else []
    if as_json:
        print_json({**summary, "candidates": ranked} if n else summary)
        return
    job_details(summary)
    if ranked:
        console.print(ranking_table(ranked, title=f"first {n} candidates"))


@jobs.command("delete")
@click.argument("job_id")
@user_errors
def delete(job_id: str) -> None:
    """Delete a finished job with its candidates, trainings, checkpoints and exported model."""
    from models.queries import find_job
    from worker.artifacts import artifacts_from_settings
    from worker.jobs import delete_job, job_status

    store = open_store()
    with store.session() as session:
        job = find_job(session, job_id)
        if job is None:
            raise click.ClickException(f"no job {job_id!r}; `knas jobs list` shows the ids")
        job_id = job.id
    if not delete_job(store, artifacts_from_settings(get_settings()), job_id):
        raise click.ClickException(f"job {job_id} is {job_status(store, job_id)}; cancel it first")
    click.echo(f"deleted job {job_id}")


@click.group()
def db() -> None:
    """Manage the store's schema."""


@db.command()
@click.option("--worker", "role", default="knas_worker", show_default=True, help="the workers' PostgreSQL role")
@click.option("--password-env", default="KNAS_WORKER_DB_PASSWORD", show_default=True,
              help="environment variable holding the role's password (unset: keep the current one)")
@user_errors
def roles(role: str, password_env: str) -> None:
    """Create the least-privilege role workers connect as (run as the database owner, after upgrade).

    \b
    It may run jobs (read/write jobs, candidates, trainings, workers, the score cache; read datasets
    and the schema version) and nothing else: no access to users and their token hashes, no DDL.
    Give workers its URL as KNAS_DATABASE_URL (docs/cluster.md).
    """
    import os

    from models.roles import create_worker_role

    url = create_worker_role(get_settings().effective_database_url, role, os.environ.get(password_env))
    console.print(f"role {role!r} is ready; workers connect with KNAS_DATABASE_URL={url}")


@db.command()
@click.option("--worker-role", default=None, help="then create/refresh this least-privilege worker role "
                                                   "(`knas db roles`; password from KNAS_WORKER_DB_PASSWORD)")
@user_errors
def upgrade(worker_role: str | None) -> None:
    """Apply all migrations to the configured database (the service's one-time setup, and after every upgrade).

    \b
    The one command that changes a service database's schema; run it as the database owner before the API
    and the workers start (they check the revision and refuse to start otherwise). Safe to run twice at once:
    a PostgreSQL advisory lock lets one upgrade while the other waits and then finds nothing to do.
    """
    import os

    from models import SchemaError, migrate

    url = get_settings().effective_database_url
    try:
        before, after = migrate(url)
    except SchemaError as error:
        raise click.ClickException(str(error)) from None
    where = url.split('@')[-1]
    if before == after:  # click.echo: one line however narrow the terminal (rich wraps)
        click.echo(f"database at {where} is up to date (schema revision {after})")
    else:
        click.echo(f"database at {where} upgraded from schema revision {before or 'none (empty)'} to {after}")
    if worker_role:
        from models.roles import create_worker_role

        worker_url = create_worker_role(url, worker_role, os.environ.get("KNAS_WORKER_DB_PASSWORD"))
        console.print(f"role {worker_role!r} is ready; workers connect with KNAS_DATABASE_URL={worker_url}")
