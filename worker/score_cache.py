"""The lab-wide score cache: a score is a pure function of its inputs, so it is computed once.

The key is exactly what a score depends on: the space and canonical arch, the data (a registered
folder's fingerprint; a built-in set's name), the probe batch (size and seed), the network's
initialisation seed, the repeat, the proxy (for an aggregate: each component) with its version and
the scorer's version, and the device class (cpu or cuda: float sums differ between them). Any job,
of any user, reuses an entry instead of scoring again; a changed proxy implementation bumps its
`version` and so never meets a stale score. Entries are written with INSERT … ON CONFLICT DO
NOTHING, so two workers scoring the same arch at once store it once.
"""
from __future__ import annotations

import hashlib
import json
from typing import Any, Iterable

from sqlalchemy import delete, func, select, update

from models import ScoreCacheEntry, Store, utcnow
from models.base import changed, upsert


def key(*, space: str, arch: str, data: str, probe_size: int, probe_seed: int, init_seed: int, repeat: int,
        proxy: str, versions: dict[str, int], scorer_version: str, device: str) -> str:
    fields = {"space": space, "arch": arch, "data": data, "probe_size": probe_size, "probe_seed": probe_seed,
              "init_seed": init_seed, "repeat": repeat, "proxy": proxy, "versions": versions,
              "scorer": scorer_version, "device": device.split(":")[0]}
    return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()


def lookup(store: Store, keys: Iterable[str]) -> dict[str, ScoreCacheEntry]:
    keys = list(keys)
    if not keys:
        return {}
    with store.session() as session:
        found = {entry.key: entry for entry in session.scalars(select(ScoreCacheEntry).where(ScoreCacheEntry.key.in_(keys)))}
        if found:
            session.execute(update(ScoreCacheEntry).where(ScoreCacheEntry.key.in_(list(found)))
                            .values(hits=ScoreCacheEntry.hits + 1).execution_options(synchronize_session=False))
        return found


def insert(session, *, cache_key: str, space: str, arch: str, proxy: str, scores: dict[str, Any], params: int | None,
           seconds: float | None) -> None:
    """Store an entry unless one exists (inside the caller's transaction)."""
    session.execute(upsert(session, ScoreCacheEntry).values(
        key=cache_key, space=space, arch=arch, proxy=proxy, scores=scores, params=params, seconds=seconds, hits=0,
        created_at=utcnow()).on_conflict_do_nothing(index_elements=["key"]))


def stats(store: Store) -> dict[str, Any]:
    with store.session() as session:
        entries, hits, seconds = session.execute(select(
            func.count(), func.coalesce(func.sum(ScoreCacheEntry.hits), 0),
            func.coalesce(func.sum(ScoreCacheEntry.seconds * ScoreCacheEntry.hits), 0.0))).one()
        per_proxy = dict(session.execute(select(ScoreCacheEntry.proxy, func.count())
                                         .group_by(ScoreCacheEntry.proxy)).all())
    # coalesce(..., 0.0) is never NULL; its stub keeps the summed column's Optional
    return {"entries": entries, "hits": int(hits), "seconds_saved": round(float(seconds), 1),  # type: ignore[arg-type]
            "per_proxy": per_proxy}


def clear(store: Store, proxy: str | None = None) -> int:
    with store.session() as session:
        query = delete(ScoreCacheEntry)
        if proxy is not None:
            query = query.where(ScoreCacheEntry.proxy == proxy)
        return changed(session, query)
