"""Every dependency of the route handlers, as `Annotated` aliases.

The lifespan in `api.main` puts the settings, the store and the queue on
`app.state`; handlers ask for them by name and stay short. Authentication lives
here too: every `/v1` route takes `CurrentUser`, and `JobIdDep` only resolves
jobs the caller may see (another user's job is a 404, as if it did not exist).
"""
from __future__ import annotations

import logging
import threading
import time
import uuid
from typing import Annotated, Callable

from cachetools import LRUCache, TTLCache
from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from limits import RateLimitItemPerMinute
from limits.storage import MemoryStorage, storage_from_string
from limits.strategies import MovingWindowRateLimiter
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from knas.settings import Settings
from models import Job, Store
from models.users import Principal, authenticate, hash_token

from .dispatch import JobQueue

log = logging.getLogger(__name__)

# `async def`: FastAPI runs a sync dependency in the threadpool, a hop per dependency per request;
# these only read app.state, so they run on the event loop.
async def get_settings(request: Request) -> Settings:
    return request.app.state.settings


async def get_store(request: Request) -> Store:
    return request.app.state.store


async def get_queue(request: Request) -> JobQueue:
    return request.app.state.queue


SettingsDep = Annotated[Settings, Depends(get_settings)]
StoreDep = Annotated[Store, Depends(get_store)]
QueueDep = Annotated[JobQueue, Depends(get_queue)]


# ---------------------------------------------------------------- authentication

class _LeastRecentlyFailed(LRUCache):
    """The addresses an in-memory limiter counts, at most `maxsize`: the one that failed least recently
    is forgotten first, and forgetting it clears its count in `limits` (whose MemoryStorage has no bound
    of its own, only the minute after which an address's failures expire)."""

    def __init__(self, maxsize: int, forget: Callable[[str], None]) -> None:
        super().__init__(maxsize)
        self._forget = forget

    def popitem(self) -> tuple[str, None]:
        client, value = super().popitem()
        self._forget(client)
        return client, value


class FailedAuthLimiter:
    """Failed authentications per client address in a moving minute (the `limits` library); over the limit -> 429.

    Only failures are limited: a request with a valid token is never refused, whatever else came
    from its address (a login node or a NAT is shared). The address is the TCP peer, or
    X-Forwarded-For's where uvicorn trusts the peer (KNAS_FORWARDED_ALLOW_IPS).

    `storage_url` is `limits`' storage: `redis://…` in service mode, so every API process
    (`knas serve --workers N`) sees every failure (keys expire with their window; if Redis cannot be
    reached the request is let through, it was failing anyway, and that is logged), or `memory://`
    (embedded: this process, at most `max_clients` addresses, see `_LeastRecentlyFailed`).
    """

    def __init__(self, per_minute: int, storage_url: str = "memory://", max_clients: int = 10_000) -> None:
        self.per_minute = per_minute
        self._item = RateLimitItemPerMinute(per_minute, namespace="knas-auth-failures")
        storage = storage_from_string(storage_url)
        self._limiter = MovingWindowRateLimiter(storage)
        self._clients = (_LeastRecentlyFailed(max_clients, lambda client: self._limiter.clear(self._item, client))
                         if isinstance(storage, MemoryStorage) else None)
        self._lock = threading.Lock()

    def check(self, client: str) -> None:
        """429 if `client` already failed `per_minute` times in the last minute."""
        try:
            allowed = self._limiter.test(self._item, client)
            reset = self._limiter.get_window_stats(self._item, client).reset_time if not allowed else 0
        except Exception as error:  # noqa: BLE001 - Redis down: fail open, the request is refused anyway
            log.warning("failed-login limiter: Redis unavailable (%s); not limiting", error)
            return
        if not allowed:
            retry = max(1, int(reset - time.time()) + 1)
            raise HTTPException(status.HTTP_429_TOO_MANY_REQUESTS,
                                f"too many failed authentications from {client}; try again in {retry} s",
                                headers={"Retry-After": str(retry)})

    def failed(self, client: str) -> None:
        try:
            self._limiter.hit(self._item, client)
        except Exception as error:  # noqa: BLE001
            log.warning("failed-login limiter: Redis unavailable (%s); failure not counted", error)
        if self._clients is not None:
            with self._lock:
                self._clients[client] = None

    def __len__(self) -> int:
        """Addresses the in-memory bound holds (0 with Redis, whose keys expire on their own)."""
        return len(self._clients) if self._clients is not None else 0


def make_auth_limiter(settings: Settings) -> FailedAuthLimiter:
    """Counted in Redis (shared by every API process) when the broker is Redis; else in this process's memory."""
    url = settings.broker_url or ""
    shared = url.startswith(("redis://", "rediss://"))
    return FailedAuthLimiter(settings.auth_failures_per_minute, url if shared else "memory://",
                             settings.auth_limiter_clients)


class AuthCache:
    """Principals of recently seen tokens, keyed by the token's SHA-256, for `ttl` seconds.

    Bounded (`maxsize` tokens, least recently used out first) and per process: a revoked or rotated
    token keeps working for at most `ttl` seconds on each API process, since nothing is shared.
    Only successful look-ups are kept; an unknown or revoked token is looked up every time.
    """

    def __init__(self, ttl: float, maxsize: int = 10_000) -> None:
        self.ttl = ttl
        self._cache: TTLCache | None = TTLCache(maxsize=maxsize, ttl=ttl) if ttl > 0 else None
        self._lock = threading.Lock()

    def get(self, digest: str) -> Principal | None:
        if self._cache is None:
            return None
        with self._lock:
            return self._cache.get(digest)

    def put(self, digest: str, principal: Principal) -> None:
        if self._cache is not None:
            with self._lock:
                self._cache[digest] = principal

    def clear(self) -> None:
        if self._cache is not None:
            with self._lock:
                self._cache.clear()


_bearer = HTTPBearer(auto_error=False, description="an API token from `knas users add` (or HOME/token, embedded)")
UNAUTHENTICATED = {"WWW-Authenticate": "Bearer"}


def _refuse(limiter: FailedAuthLimiter, client: str) -> None:
    """Count a failed authentication (429 first if `client` is over its limit)."""
    limiter.check(client)
    limiter.failed(client)


async def get_current_user(request: Request, store: StoreDep,
                           credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> Principal:
    """The caller, from `Authorization: Bearer <token>`: 401 without a valid one, 403 if revoked.

    On the event loop while the token is in the auth cache (most requests); the database and the
    shared limiter (Redis) are only reached from the threadpool, on a miss or a failure.
    """
    limiter: FailedAuthLimiter = request.app.state.auth_limiter
    client = request.client.host if request.client else "unknown"
    if credentials is None or credentials.scheme.lower() != "bearer" or not credentials.credentials:
        await run_in_threadpool(_refuse, limiter, client)
        raise HTTPException(status.HTTP_401_UNAUTHORIZED,
                            "authentication required: send 'Authorization: Bearer <token>' "
                            "(tokens come from `knas users add`)", headers=UNAUTHENTICATED)
    # The token first: a valid one is never refused because of failures from the same address.
    cache: AuthCache = request.app.state.auth_cache
    digest = hash_token(credentials.credentials)
    principal = cache.get(digest)
    if principal is not None:
        return principal
    principal, revoked = await run_in_threadpool(authenticate, store, credentials.credentials)
    if principal is not None:
        cache.put(digest, principal)
    else:
        await run_in_threadpool(_refuse, limiter, client)
        if revoked:
            raise HTTPException(status.HTTP_403_FORBIDDEN, "this token has been revoked; ask an admin for a new one")
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "invalid token", headers=UNAUTHENTICATED)
    return principal


CurrentUser = Annotated[Principal, Depends(get_current_user)]


async def canonical_job_id(job_id: str) -> str:
    """The path's job id in canonical form; 404 for anything that is not a UUID (no query needed)."""
    try:
        return str(uuid.UUID(job_id))
    except ValueError:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no job {job_id!r}: job ids are UUIDs") from None


def visible(query, user: Principal):
    """`query` over jobs, narrowed to the ones `user` may see (all of them for an admin)."""
    return query if user.admin else query.where(Job.owner == user.name)


def job_not_found(job_id: str) -> HTTPException:
    return HTTPException(status.HTTP_404_NOT_FOUND, f"no job {job_id!r}")


def existing_job_id(job_id: Annotated[str, Depends(canonical_job_id)], store: StoreDep, user: CurrentUser) -> str:
    """The path's job id, canonical; 404 for anything that is not a job this caller may see."""
    with store.session() as session:
        if session.scalar(visible(select(Job.id).where(Job.id == job_id), user)) is None:
            raise job_not_found(job_id)
    return job_id


def job_row(session: Session, job_id: str) -> Job:
    """The job a `JobIdDep` route reads; 404 if it was deleted since the dependency looked."""
    job = session.get(Job, job_id)
    if job is None:
        raise job_not_found(job_id)
    return job


JobIdDep = Annotated[str, Depends(existing_job_id)]
JobIdPath = Annotated[str, Depends(canonical_job_id)]  # for routes that check visibility in their own query
