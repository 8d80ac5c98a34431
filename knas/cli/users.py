"""`knas users add|list|revoke|token`: run by an admin on the server host (they talk to the store)."""
from __future__ import annotations

import click

from .common import open_store, print_json, user_errors


@click.group()
def users() -> None:
    """Manage API users and their tokens (talks to KNAS_DATABASE_URL directly)."""


@users.command("add")
@click.argument("name")
@click.option("--admin", is_flag=True, help="may see and cancel every user's jobs")
@click.option("--max-jobs", type=int, default=None, help="active jobs at once (default: KNAS_USER_MAX_JOBS)")
@click.option("--max-candidates", type=int, default=None, help="candidates per job (default: KNAS_MAX_CANDIDATES)")
@click.option("--max-training-epochs", type=int, default=None,
              help="training work per job, top_k x epochs + retrain epochs (default: KNAS_MAX_TRAINING_EPOCHS)")
@user_errors
def add(name: str, admin: bool, max_jobs: int | None, max_candidates: int | None,
        max_training_epochs: int | None) -> None:
    """Create a user and print their token (shown this once; only its hash is stored)."""
    from models.users import add_user

    token = add_user(open_store(), name, admin=admin, max_jobs=max_jobs, max_candidates=max_candidates,
                     max_training_epochs=max_training_epochs)
    click.echo(f"created user {name!r}{' (admin)' if admin else ''}; their token (shown only now):", err=True)
    click.echo(token)


@users.command("token")
@click.argument("name")
@user_errors
def token(name: str) -> None:
    """Issue a new token for NAME (the old one stops working; a revoked user is re-enabled)."""
    from models.users import rotate_token

    new = rotate_token(open_store(), name)
    click.echo(f"new token for {name!r} (shown only now):", err=True)
    click.echo(new)


@users.command("list")
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
@user_errors
def list_(as_json: bool) -> None:
    """Every user, with limits and whether their token is revoked (never the token)."""
    from models.users import list_users

    rows = [{"name": u.name, "admin": u.admin, "max_jobs": u.max_jobs, "max_candidates": u.max_candidates,
             "max_training_epochs": u.max_training_epochs,
             "created_at": u.created_at.isoformat(timespec="seconds"),
             "revoked_at": u.revoked_at.isoformat(timespec="seconds") if u.revoked_at else None}
            for u in list_users(open_store())]
    if as_json:
        print_json(rows)
        return
    if not rows:
        click.echo("no users; create one with `knas users add NAME --admin`")
        return
    click.echo(f"{'name':20s} {'admin':5s} {'max-jobs':>8s} {'max-cand':>9s}  created              status")
    for row in rows:
        state = f"revoked {row['revoked_at']}" if row["revoked_at"] else "active"
        click.echo(f"{row['name']:20s} {'yes' if row['admin'] else 'no':5s} {row['max_jobs'] or '-':>8} "
                   f"{row['max_candidates'] or '-':>9}  {row['created_at']}  {state}")


@users.command("revoke")
@click.argument("name")
@user_errors
def revoke(name: str) -> None:
    """Revoke NAME's token: their requests get 403 from now on (their jobs are kept)."""
    from models.users import revoke_user

    if revoke_user(open_store(), name):
        click.echo(f"revoked {name!r}")
    else:
        click.echo(f"{name!r} was already revoked")
