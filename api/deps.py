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
from collections import OrderedDict, deque
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

    Only failures are limited: a request with a valid token is never refused, whatever else came
    from its address (a login node or a NAT is shared). Memory is bounded: at most `max_clients`
    addresses are remembered, the one that failed least recently is forgotten first. The address is
    the TCP peer, or X-Forwarded-For's where uvicorn trusts the peer (KNAS_FORWARDED_ALLOW_IPS).
    """

    def __init__(self, per_minute: int, max_clients: int = 10_000) -> None:
        self.per_minute, self.max_clients = per_minute, max_clients
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()
        self._lock = threading.Lock()

    def _recent(self, client: str, now: float) -> deque[float]:
        window = self._failures.get(client)
        if window is None:
            return deque()
        while window and window[0] <= now - 60:
            window.popleft()
        if not window:
            del self._failures[client]
        return window

    def check(self, client: str) -> None:
        """429 if `client` already failed `per_minute` times in the last minute."""
        with self._lock:
            now = time.monotonic()
            window = self._recent(client, now)
            if len(window) >= self.per_minute:
                retry = max(1, int(60 - (now - window[0])) + 1)
                raise HTTPException(status.HTTP_429_TOO_MANY_REQUESTS,
                                    f"too many failed authentications from {client}; try again in {retry} s",
                                    headers={"Retry-After": str(retry)})

    def failed(self, client: str) -> None:
        with self._lock:
            now = time.monotonic()
            window = self._recent(client, now)
            window.append(now)
            self._failures[client] = window
            self._failures.move_to_end(client)
            while len(self._failures) > self.max_clients:
                self._failures.popitem(last=False)

    def __len__(self) -> int:
        return len(self._failures)


_bearer = HTTPBearer(auto_error=False, description="an API token from `knas users add` (or HOME/token, embedded)")
UNAUTHENTICATED = {"WWW-Authenticate": "Bearer"}


def get_current_user(request: Request, store: StoreDep,
                     credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> Principal:
    """The caller, from `Authorization: Bearer <token>`: 401 without a valid one, 403 if revoked."""
    limiter: FailedAuthLimiter = request.app.state.auth_limiter
    client = request.client.host if request.client else "unknown"
    if credentials is None or credentials.scheme.lower() != "bearer" or not credentials.credentials:
        limiter.check(client)
        limiter.failed(client)
        raise HTTPException(status.HTTP_401_UNAUTHORIZED,
                            "authentication required: send 'Authorization: Bearer <token>' "
                            "(tokens come from `knas users add`)", headers=UNAUTHENTICATED)
    # The token first: a valid one is never refused because of failures from the same address.
    principal, revoked = authenticate(store, credentials.credentials)
    if principal is None:
        limiter.check(client)
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
