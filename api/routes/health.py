"""`/healthz`: can this server reach its database and (in the service) its broker?"""
from __future__ import annotations

from fastapi import APIRouter, Response, status
from sqlalchemy import text

from models import Store

from ..deps import SettingsDep, StoreDep
from ..schemas import Health

router = APIRouter(tags=["health"])

TIMEOUT_S = 3


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


@router.get("/healthz", response_model=Health, responses={503: {"model": Health}})
def healthz(response: Response, store: StoreDep, settings: SettingsDep) -> Health:
    """200 when everything this server needs answers; 503 naming what does not."""
    database, broker = check_database(store), check_broker(settings.broker_url)
    healthy = database == "ok" and broker in ("ok", "in-process")
    if not healthy:
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    return Health(status="ok" if healthy else "unavailable", database=database, broker=broker)
