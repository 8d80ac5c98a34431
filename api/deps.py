"""Every dependency of the route handlers, as `Annotated` aliases.

The lifespan in `api.main` puts the settings, the store and the queue on
`app.state`; handlers ask for them by name and stay short.
"""
from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from sqlalchemy import select

from knas.settings import Settings
from models import Job, Store
from worker.queue import JobQueue


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_store(request: Request) -> Store:
    return request.app.state.store


def get_queue(request: Request) -> JobQueue:
    return request.app.state.queue


def get_current_user() -> str | None:
    """The caller's name; None until bearer tokens arrive (next issue)."""
    return None


SettingsDep = Annotated[Settings, Depends(get_settings)]
StoreDep = Annotated[Store, Depends(get_store)]
QueueDep = Annotated[JobQueue, Depends(get_queue)]
CurrentUser = Annotated[str | None, Depends(get_current_user)]


def existing_job_id(job_id: str, store: StoreDep) -> str:
    """The path's job id, canonical; 404 for anything that is not the id of a stored job."""
    try:
        canonical = str(uuid.UUID(job_id))
    except ValueError:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no job {job_id!r}: job ids are UUIDs") from None
    with store.session() as session:
        if session.scalar(select(Job.id).where(Job.id == canonical)) is None:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no job {canonical!r}")
    return canonical


JobIdDep = Annotated[str, Depends(existing_job_id)]
