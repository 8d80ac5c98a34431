"""`knas cache stats|clear`: the lab-wide score cache (worker/score_cache.py), straight in the store."""
from __future__ import annotations

import click

from .common import open_store, print_json, user_errors


@click.group()
def cache() -> None:
    """The lab-wide score cache: every job reuses scores computed before with exactly the same inputs."""


@cache.command("stats")
@click.option("--json", "as_json", is_flag=True)
@user_errors
def stats(as_json: bool) -> None:
    """Entries, hits and the proxy seconds the hits saved."""
    from worker.score_cache import stats as cache_stats

    figures = cache_stats(open_store())
    if as_json:
        print_json(figures)
        return
    click.echo(f"{figures['entries']:,} entries, {figures['hits']:,} hits, "
               f"{figures['seconds_saved']:,} proxy seconds saved")
    for proxy, count in sorted(figures["per_proxy"].items()):
        click.echo(f"  {proxy:12s} {count:,}")


@cache.command("clear")
@click.option("--proxy", default=None, help="only this proxy's entries")
@click.option("--yes", is_flag=True, help="do not ask")
@user_errors
def clear(proxy: str | None, yes: bool) -> None:
    """Delete cached scores (jobs then score again)."""
    from worker.score_cache import clear as clear_cache

    if not yes:
        click.confirm(f"delete {'the ' + proxy if proxy else 'every'} cached score?", abort=True)
    click.echo(f"deleted {clear_cache(open_store(), proxy):,} entries")
