"""`knas submit / status / results` (being written)."""
import click


@click.command()
def submit() -> None:
    """Submit a job to a server (not yet available)."""
    raise click.ClickException("not implemented yet")


@click.command()
def status() -> None:
    """Show a job's status (not yet available)."""
    raise click.ClickException("not implemented yet")


@click.command()
def results() -> None:
    """Print a job's ranking (not yet available)."""
    raise click.ClickException("not implemented yet")
