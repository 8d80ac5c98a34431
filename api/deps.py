"""Every dependency of the route handlers, as `Annotated` aliases.

The lifespan in `api.main` puts the settings, the store and the queue on
`app.state`; handlers ask for them by name and stay short. Authentication lives
here too: every `/v1` route takes `CurrentUser`, and `JobIdDep` only resolves
jobs the caller may see (another user's job is a 404, as if it did not exist).
"""
from __future__ import annotations

import threading
import time
import uuid
from collections import defaultdict, deque
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import select

from knas.settings import Settings
from models import Job, Store
from models.users import Principal, authenticate
from worker.queue import JobQueue


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_store(request: Request) -> Store:
    return request.app.state.store


def get_queue(request: Request) -> JobQueue:
    return request.app.state.queue


SettingsDep = Annotated[Settings, Depends(get_settings)]
StoreDep = Annotated[Store, Depends(get_store)]
QueueDep = Annotated[JobQueue, Depends(get_queue)]


# ---------------------------------------------------------------- authentication

class FailedAuthLimiter:
    """Failed authentications per client address in a sliding minute; over the limit -> 429.

    Guessing tokens is hopeless (256 bits), but a client stuck in a loop with a stale token
    should not cost a database lookup per request.
    """

    def __init__(self, per_minute: int) -> None:
        self.per_minute = per_minute
        self._failures: dict[str, deque[float]] = defaultdict(deque)
        self._lock = threading.Lock()

    def _recent(self, client: str, now: float) -> deque[float]:
        window = self._failures[client]
        while window and window[0] <= now - 60:
            window.popleft()
        return window

    def check(self, client: str) -> None:
        with self._lock:
            window = self._recent(client, time.monotonic())
            if len(window) >= self.per_minute:
                retry = max(1, int(60 - (time.monotonic() - window[0])) + 1)
                raise HTTPException(status.HTTP_429_TOO_MANY_REQUESTS,
                                    f"too many failed authentications from {client}; try again in {retry} s",
                                    headers={"Retry-After": str(retry)})

    def failed(self, client: str) -> None:
        with self._lock:
            self._recent(client, time.monotonic()).append(time.monotonic())


_bearer = HTTPBearer(auto_error=False, description="an API token from `knas users add` (or HOME/token, embedded)")
UNAUTHENTICATED = {"WWW-Authenticate": "Bearer"}


def get_current_user(request: Request, store: StoreDep,
                     credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> Principal:
    """The caller, from `Authorization: Bearer <token>`: 401 without a valid one, 403 if revoked."""
    limiter: FailedAuthLimiter = request.app.state.auth_limiter
    client = request.client.host if request.client else "unknown"
    limiter.check(client)
    if credentials is None or credentials.scheme.lower() != "bearer" or not credentials.credentials:
        limiter.failed(client)
        raise HTTPException(status.HTTP_401_UNAUTHORIZED,
                            "authentication required: send 'Authorization: Bearer <token>' "
                            "(tokens come from `knas users add`)", headers=UNAUTHENTICATED)
    principal, revoked = authenticate(store, credentials.credentials)
    if principal is None:
        limiter.failed(client)
        if revoked:
            raise HTTPException(status.HTTP_403_FORBIDDEN, "this token has been revoked; ask an admin for a new one")
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "invalid token", headers=UNAUTHENTICATED)
    return principal


CurrentUser = Annotated[Principal, Depends(get_current_user)]


def existing_job_id(job_id: str, store: StoreDep, user: CurrentUser) -> str:
    """The path's job id, canonical; 404 for anything that is not a job this caller may see."""
    try:
        canonical = str(uuid.UUID(job_id))
    except ValueError:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no job {job_id!r}: job ids are UUIDs") from None
    query = select(Job.id).where(Job.id == canonical)
    if not user.admin:
        query = query.where(Job.owner == user.name)
    with store.session() as session:
        if session.scalar(query) is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no job {canonical!r}")
    return canonical


JobIdDep = Annotated[str, Depends(existing_job_id)]
