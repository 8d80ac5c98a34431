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
from collections import OrderedDict, deque
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from knas.settings import Settings
from models import Job, Store
from models.users import Principal, authenticate, hash_token
from worker.dispatch import JobQueue

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


class SharedAuthLimiter:
    """The same limit, counted in Redis, so every API process (`knas serve --workers N`) sees every failure.

    A moving window of the `limits` library: the failures of the last 60 s, whichever process saw them.
    Keys expire with their window, so Redis holds only addresses that failed in the last minute. If
    Redis cannot be reached the limiter lets the request through (it was failing anyway) and logs it.
    """

    def __init__(self, per_minute: int, storage_url: str) -> None:
        from limits import RateLimitItemPerMinute
        from limits.storage import storage_from_string
        from limits.strategies import MovingWindowRateLimiter

        self.per_minute = per_minute
        self._item = RateLimitItemPerMinute(per_minute, namespace="knas-auth-failures")
        self._limiter = MovingWindowRateLimiter(storage_from_string(storage_url))

    def check(self, client: str) -> None:
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


def make_auth_limiter(settings: Settings) -> FailedAuthLimiter | SharedAuthLimiter:
    """Redis (shared by every API process) when the broker is Redis; else this process's bounded memory."""
    url = settings.broker_url or ""
    if url.startswith(("redis://", "rediss://")):
        return SharedAuthLimiter(settings.auth_failures_per_minute, url)
    return FailedAuthLimiter(settings.auth_failures_per_minute, settings.auth_limiter_clients)


class AuthCache:
    """Principals of recently seen tokens, keyed by the token's SHA-256, for `ttl` seconds.

    Bounded (`maxsize` tokens, least recently used out first) and per process: a revoked or rotated
    token keeps working for at most `ttl` seconds on each API process, since nothing is shared.
    Only successful look-ups are kept; an unknown or revoked token is looked up every time.
    """

    def __init__(self, ttl: float, maxsize: int = 10_000) -> None:
        from cachetools import TTLCache

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


def _refuse(limiter: FailedAuthLimiter | SharedAuthLimiter, client: str) -> None:
    """Count a failed authentication (429 first if `client` is over its limit)."""
    limiter.check(client)
    limiter.failed(client)


async def get_current_user(request: Request, store: StoreDep,
                           credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> Principal:
    """The caller, from `Authorization: Bearer <token>`: 401 without a valid one, 403 if revoked.

    On the event loop while the token is in the auth cache (most requests); the database and the
    shared limiter (Redis) are only reached from the threadpool, on a miss or a failure.
    """
    limiter: FailedAuthLimiter | SharedAuthLimiter = request.app.state.auth_limiter
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


JobIdDep = Annotated[str, Depends(existing_job_id)]
JobIdPath = Annotated[str, Depends(canonical_job_id)]  # for routes that check visibility in their own query
