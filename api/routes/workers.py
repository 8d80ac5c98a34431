"""The workers that reported in (Celery workers heartbeat into the `workers` table)."""
from __future__ import annotations

from fastapi import APIRouter
from sqlalchemy import select

from models import Worker
from models.clock import db_ago

from ..deps import CurrentUser, SettingsDep, StoreDep
from ..schemas import WorkerPublic

router = APIRouter(prefix="/v1/workers", tags=["workers"])


@router.get("", response_model=list[WorkerPublic])
def list_workers(store: StoreDep, settings: SettingsDep, user: CurrentUser) -> list[WorkerPublic]:
    """Newest heartbeat first; `alive` = seen within 3 sweep intervals (KNAS_SWEEP_INTERVAL), by the
    database's clock (the one heartbeats are written with), not the API host's.

    `current_job` is shown to admins only (null for other users: another user's job id is not theirs to see)."""
    alive = Worker.last_seen >= db_ago(3 * settings.sweep_interval)
    with store.session() as session:
        rows = session.execute(select(Worker, alive).order_by(Worker.last_seen.desc(), Worker.name)).all()
        return [
            WorkerPublic(name=w.name, hostname=w.hostname, device=w.device, current_job=w.current_job if user.admin else None,
                         started_at=w.started_at, last_seen=w.last_seen, alive=bool(is_alive))
            for w, is_alive in rows
        ]
