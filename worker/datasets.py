"""Datasets registered without code (image folders): validate, store, look up. Torch-free.

The CLI (`knas datasets add`) and the API (`POST /v1/datasets`) both land here. A registration
scans the folder once (every image decoded, so a broken file is named now, not an hour into a
job), and stores its summary and fingerprint; a job copies that record into `jobs.data`, so it
says exactly which data it saw and workers on other nodes rebuild the same splits from it.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from sqlalchemy import select

from models import DatasetRecord, Store
from scorer.data import DATASETS
from scorer.folders import FolderSummary, ImageFolderError, check_unchanged, scan_folder, within_roots

NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
KIND = "image-folder"


class DatasetError(ValueError):
    """A registration that cannot be done; the message says why and what to do."""

    def __init__(self, message: str, field: str = "path") -> None:
        super().__init__(message)
        self.field = field


class DatasetExists(DatasetError):
    """The name is taken (the API answers 409)."""


def check_name(name: str) -> str:
    if not NAME.match(name):
        raise DatasetError(f"dataset name {name!r} is not allowed: use 1-64 lower-case letters, digits, '.', '_' "
                           f"or '-', starting with a letter or digit", field="name")
    if name not in DATASETS:
        return name
    raise DatasetError(f"{name!r} is a built-in dataset; pick another name", field="name")


def allowed(path: Path | str, roots: list[Path] | None) -> Path:
    """The folder, resolved; with `roots` (a server), it must lie inside one of them. None: anything goes
    (the local CLI on the embedded store, with no KNAS_DATA_DIR: the user reads their own files)."""
    if "\x00" in str(path):
        raise DatasetError("the path contains a NUL byte")
    if roots is None:
        resolved = Path(path).expanduser().resolve()
        if not resolved.is_dir():
            raise DatasetError(f"{path} is not a directory")
        return resolved
    try:
        return within_roots(Path(path).expanduser(), roots)
    except (ImageFolderError, OSError, ValueError) as error:
        raise DatasetError(str(error)) from None


def register(store: Store, name: str, path: Path | str, roots: list[Path] | None, image_size: int | None = None,
             channels: int | None = None, created_by: str | None = None, replace: bool = False) -> dict[str, Any]:
    """Scan the folder and store it under `name`; the record as `describe` shows it."""
    check_name(name)
    folder = allowed(path, roots)
    with store.session() as session:
        existing = session.scalar(select(DatasetRecord).where(DatasetRecord.name == name))
        if existing is not None and not replace:
            raise DatasetExists(f"a dataset named {name!r} exists already ({existing.path}); remove it first "
                               f"(`knas datasets remove {name}`) or pick another name", field="name")
    try:
        summary = scan_folder(folder, image_size=image_size, channels=channels)
    except ImageFolderError as error:
        raise DatasetError(str(error)) from None
    with store.session() as session:
        row = session.scalar(select(DatasetRecord).where(DatasetRecord.name == name))
        if row is None:
            row = DatasetRecord(name=name)
            session.add(row)
        row.kind, row.path, row.fingerprint = KIND, summary.root, summary.fingerprint
        row.summary, row.created_by = summary.to_dict(), created_by
        session.flush()
        return describe(row)


def describe(row: DatasetRecord) -> dict[str, Any]:
    summary = FolderSummary.from_dict(row.summary)
    return {"name": row.name, "kind": row.kind, "path": row.path, "fingerprint": row.fingerprint,
            "num_classes": summary.num_classes, "classes": summary.classes,
            "in_shape": [summary.channels, summary.image_size, summary.image_size],
            "image_size": summary.image_size, "channels": summary.channels, "mean": summary.mean, "std": summary.std,
            "counts": summary.counts, "sizes": summary.sizes, "valid_source": summary.valid_source,
            "split_seed": summary.split_seed, "valid_fraction": summary.valid_fraction,
            "created_by": row.created_by, "created_at": row.created_at}


def job_record(row: DatasetRecord) -> dict[str, Any]:
    """What a job stores in `jobs.data`: enough for any worker to rebuild the splits, and for the card."""
    return {"name": row.name, "kind": row.kind, "path": row.path, "fingerprint": row.fingerprint,
            "summary": row.summary}


def find(store: Store, name: str) -> DatasetRecord | None:
    if not NAME.match(name):
        return None
    with store.session() as session:
        return session.scalar(select(DatasetRecord).where(DatasetRecord.name == name))


def list_registered(store: Store) -> list[dict[str, Any]]:
    with store.session() as session:
        return [describe(row) for row in session.scalars(select(DatasetRecord).order_by(DatasetRecord.name))]


def remove(store: Store, name: str) -> bool:
    """Forget a registration (the files stay; jobs keep the record they copied)."""
    if not NAME.match(name):
        return False
    with store.session() as session:
        row = session.scalar(select(DatasetRecord).where(DatasetRecord.name == name))
        if row is None:
            return False
        session.delete(row)
        return True


def check_present(record: dict[str, Any], roots: list[Path] | None) -> None:
    """At submission: the folder is still allowed and unchanged since it was registered."""
    allowed(record["path"], roots)
    try:
        check_unchanged(FolderSummary.from_dict(record["summary"]))
    except ImageFolderError as error:
        raise DatasetError(f"dataset {record['name']!r}: {error}", field="dataset") from None
