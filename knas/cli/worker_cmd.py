"""`knas worker` (being written)."""
import click


@click.command()
def worker() -> None:
    """Start Celery workers (not yet available)."""
    raise click.ClickException("not implemented yet")
