"""The workers that reported in (Celery workers heartbeat into the `workers` table)."""
from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter
from sqlalchemy import select

from models import Worker, utcnow

from ..deps import CurrentUser, SettingsDep, StoreDep
from ..schemas import WorkerPublic

router = APIRouter(prefix="/v1/workers", tags=["workers"])


@router.get("", response_model=list[WorkerPublic])
def list_workers(store: StoreDep, settings: SettingsDep, user: CurrentUser) -> list[WorkerPublic]:
    """Newest heartbeat first; `alive` = seen within 3 sweep intervals (KNAS_SWEEP_INTERVAL).

    `current_job` is shown to admins only (null for other users: another user's job id is not theirs to see)."""
    cutoff = utcnow() - timedelta(seconds=3 * settings.sweep_interval)
    with store.session() as session:
        rows = session.scalars(select(Worker).order_by(Worker.last_seen.desc(), Worker.name)).all()
        return [
            WorkerPublic(name=w.name, hostname=w.hostname, device=w.device, current_job=w.current_job if user.admin else None,
                         started_at=w.started_at, last_seen=w.last_seen, alive=w.last_seen >= cutoff)
            for w in rows
        ]
