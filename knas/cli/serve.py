"""`knas serve` (being written)."""
import click


@click.command()
def serve() -> None:
    """Start the HTTP API (not yet available)."""
    raise click.ClickException("not implemented yet")
