"""Users and their API tokens (torch-free; the API and `knas users` share it).

A token is 32 random bytes, shown once. Only its SHA-256 is stored: tokens carry 256 bits of
entropy, so a fast hash is enough (no password stretching needed), and looking a token up by
its hash never compares secrets byte by byte. The final comparison uses `hmac.compare_digest`.
"""
from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from .base import changed, utcnow
from .db import Store
from .tables import User

TOKEN_PREFIX = "knas_"
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")
LOCAL_USER = "local"


class UserError(ValueError):
    """A user operation that cannot be done as asked (the message says why)."""


@dataclass(frozen=True)
class Principal:
    """Who is calling: what route handlers need to know, detached from any session."""

    name: str
    admin: bool
    max_jobs: int | None
    max_candidates: int | None
    max_training_epochs: int | None = None


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def check_name(name: str) -> str:
    if not NAME_PATTERN.match(name or ""):
        raise UserError(f"invalid user name {name!r}: use 1-64 letters, digits, '_', '.', '@' or '-'")
    return name


def add_user(store: Store, name: str, admin: bool = False, max_jobs: int | None = None,
             max_candidates: int | None = None, max_training_epochs: int | None = None) -> str:
    """Create a user; return their token (the only time it exists in clear)."""
    check_name(name)
    for value, flag in ((max_jobs, "--max-jobs"), (max_candidates, "--max-candidates"),
                        (max_training_epochs, "--max-training-epochs")):
        if value is not None and value < 1:
            raise UserError(f"{flag} must be at least 1")
    token = new_token()
    try:
        with store.session() as session:
            session.add(User(name=name, token_hash=hash_token(token), admin=admin, max_jobs=max_jobs,
                             max_candidates=max_candidates, max_training_epochs=max_training_epochs))
    except IntegrityError:
        raise UserError(f"user {name!r} already exists (revoke it or pick another name)") from None
    return token


def rotate_token(store: Store, name: str) -> str:
    """A new token for an existing user (the old one stops working); un-revokes the user."""
    token = new_token()
    with store.session() as session:
        done = changed(session, update(User).where(User.name == name)
                       .values(token_hash=hash_token(token), revoked_at=None))
    if not done:
        raise UserError(f"no user {name!r}")
    return token


def revoke_user(store: Store, name: str) -> bool:
    """Revoke a user's token: their requests get 403 from now on. False if already revoked."""
    with store.session() as session:
        if session.scalar(select(User.id).where(User.name == name)) is None:
            raise UserError(f"no user {name!r}")
        return changed(session, update(User).where(User.name == name, User.revoked_at.is_(None))
                       .values(revoked_at=utcnow())) == 1


def lock_user(session: Session, name: str) -> None:
    """Hold `name`'s row locked until `session`'s transaction ends, so per-user quota checks serialise.

    PostgreSQL: SELECT ... FOR UPDATE on the row. SQLite has no row locks: a no-op UPDATE of the row
    takes the database's write lock (what BEGIN IMMEDIATE would), which is held until commit/rollback.
    """
    if session.get_bind().dialect.name == "sqlite":
        session.execute(update(User).where(User.name == name).values(name=User.name)
                        .execution_options(synchronize_session=False))
    else:
        session.execute(select(User.id).where(User.name == name).with_for_update())


def list_users(store: Store) -> list[User]:
    with store.session() as session:
        return list(session.scalars(select(User).order_by(User.name)))


def authenticate(store: Store, token: str) -> tuple[Principal | None, bool]:
    """(principal, revoked) for a presented token; (None, False) when no user has it."""
    digest = hash_token(token)
    with store.session() as session:
        user = session.scalar(select(User).where(User.token_hash == digest))
        if user is None or not hmac.compare_digest(user.token_hash, digest):
            return None, False
        if user.revoked_at is not None:
            return None, True
        return Principal(user.name, user.admin, user.max_jobs, user.max_candidates, user.max_training_epochs), False


def ensure_local_user(store: Store, home: Path) -> Path:
    """The embedded default's single admin user: (re)issue its token into HOME/token (mode 0600).

    Run at every embedded start; a token file that still works is kept, so clients keep working.
    """
    path = home / "token"
    if path.exists():
        principal, _ = authenticate(store, path.read_text().strip())
        if principal is not None and principal.name == LOCAL_USER:
            return path
    with store.session() as session:
        exists = session.scalar(select(User.id).where(User.name == LOCAL_USER)) is not None
    token = rotate_token(store, LOCAL_USER) if exists else add_user(store, LOCAL_USER, admin=True)
    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    path.touch(mode=0o600, exist_ok=True)
    path.chmod(0o600)
    path.write_text(token + "\n")
    return path
