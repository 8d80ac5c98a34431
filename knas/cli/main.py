"""Entry point of the `knas` command."""
from __future__ import annotations

import click

from .cache import cache
from .client import results, status, submit
from .datasets import datasets, export
from .jobs import db, jobs
from .search import score, search
from .serve import serve
from .users import users
from .worker_cmd import worker


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="knas")
def cli() -> None:
    """knas: training-free neural architecture search with the KNAS gradient kernel."""


@cli.command()
def spaces() -> None:
    """List search spaces."""
    from scorer.spaces import SPACES

    for name in SPACES.names():
        space = SPACES.get(name)
        click.echo(f"{name:10s} {space.size:>6d} archs  {space.description}  e.g. {space.example}")


@cli.command()
def proxies() -> None:
    """List zero-cost proxies."""
    from scorer.proxies import PROXIES

    for info in PROXIES.infos():
        click.echo(f"{info.name:12s} {info.description}")


for command in (search, score, jobs, db, worker, serve, submit, status, results, users, datasets, export, cache):
    cli.add_command(command)


def main() -> None:
    cli(prog_name="knas")


if __name__ == "__main__":
    main()
