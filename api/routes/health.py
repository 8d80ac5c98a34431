"""`/healthz`: can this server reach its database and (in the service) its broker?

The probe is unauthenticated, so it must be cheap whoever calls it how often: the answer is cached
for `CACHE_S` seconds (one check at a time, whatever the number of callers), and the broker is
pinged over one long-lived connection instead of a new one per check.
"""
from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

from fastapi import APIRouter, Request, Response, status
from sqlalchemy import text

from models import Store

from ..deps import SettingsDep, StoreDep
from ..schemas import Health

if TYPE_CHECKING:
    from redis import Redis

router = APIRouter(tags=["health"])

TIMEOUT_S = 3
CACHE_S = 2.0


def _first_line(error: BaseException) -> str:
    cause = getattr(error, "orig", None) or error  # the driver's own words, without SQLAlchemy's wrapping
    lines = str(cause).strip().splitlines()
    return f"{type(cause).__name__}: {lines[0]}" if lines else type(cause).__name__


def check_database(store: Store) -> str:
    try:
        with store.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception as error:  # noqa: BLE001 - any failure is the answer
        return f"unavailable: {_first_line(error)}"
    return "ok"


def check_broker(url: str | None) -> str:
    """One throw-away connection (brokers other than Redis; `BrokerProbe` reuses one for Redis)."""
    if not url:
        return "in-process"
    from kombu import Connection

    try:
        with Connection(url, connect_timeout=TIMEOUT_S,
                        transport_options={"socket_timeout": TIMEOUT_S, "socket_connect_timeout": TIMEOUT_S}) as conn:
            conn.ensure_connection(max_retries=1, interval_start=0, interval_step=0, timeout=TIMEOUT_S)
    except Exception as error:  # noqa: BLE001
        return f"unavailable: {_first_line(error)}"
    return "ok"


class HealthCheck:
    """The cached answer of /healthz; a Redis broker is pinged over one pooled connection."""

    def __init__(self, broker_url: str | None, cache_s: float = CACHE_S) -> None:
        self.broker_url, self.cache_s = broker_url, cache_s
        self._redis: Redis | None = None
        self._lock = threading.Lock()
        self._answer: tuple[float, str, str] | None = None

    def _broker(self) -> str:
        url = self.broker_url
        if not url or url.split(":", 1)[0] not in ("redis", "rediss"):
            return check_broker(url)
        try:
            if self._redis is None:
                import redis

                self._redis = redis.Redis.from_url(url, socket_timeout=TIMEOUT_S, socket_connect_timeout=TIMEOUT_S,
                                                   max_connections=1)
            self._redis.ping()
        except Exception as error:  # noqa: BLE001
            return f"unavailable: {_first_line(error)}"
        return "ok"

    def __call__(self, store: Store) -> tuple[str, str]:
        with self._lock:
            now = time.monotonic()
            if self._answer is None or now - self._answer[0] >= self.cache_s:
                self._answer = (now, check_database(store), self._broker())
            return self._answer[1], self._answer[2]

    def close(self) -> None:
        if self._redis is not None:
            self._redis.close()
            self._redis = None


@router.get("/healthz", response_model=Health, responses={503: {"model": Health}})
def healthz(request: Request, response: Response, store: StoreDep, settings: SettingsDep) -> Health:
    """200 when everything this server needs answers; 503 naming what does not (checked at most every 2 s)."""
    checker = getattr(request.app.state, "health", None)
    if checker is None:
        checker = request.app.state.health = HealthCheck(settings.broker_url)
    database, broker = checker(store)
    healthy = database == "ok" and broker in ("ok", "in-process")
    if not healthy:
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    return Health(status="ok" if healthy else "unavailable", database=database, broker=broker)
