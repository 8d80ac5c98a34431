"""What this server can run: search spaces, proxies and datasets (torch-free tables)."""
from __future__ import annotations

from fastapi import APIRouter

from scorer import catalog
from scorer.spaces import SPACES

from ..deps import SettingsDep
from ..schemas import DatasetPublic, ProxyPublic, SpacePublic

router = APIRouter(prefix="/v1", tags=["catalog"])


def _aliases_of(name: str, aliases: dict[str, str]) -> list[str]:
    return sorted(alias for alias, target in aliases.items() if target == name)


@router.get("/spaces", response_model=list[SpacePublic])
def list_spaces() -> list[SpacePublic]:
    aliases = SPACES.aliases()
    return [
        SpacePublic(name=name, size=space.size, description=space.description, example=space.example,
                    aliases=_aliases_of(name, aliases))
        for name, space in ((name, SPACES.get(name)) for name in SPACES.names())
    ]


@router.get("/proxies", response_model=list[ProxyPublic])
def list_proxies() -> list[ProxyPublic]:
    return [ProxyPublic(name=name, description=description, aliases=_aliases_of(name, catalog.PROXY_ALIASES))
            for name, description in sorted(catalog.PROXIES.items())]


@router.get("/datasets", response_model=list[DatasetPublic])
def list_datasets(settings: SettingsDep) -> list[DatasetPublic]:
    """`present` says whether a job on this dataset would be accepted here (files under KNAS_DATA_DIR)."""
    return [
        DatasetPublic(name=entry.name, num_classes=entry.num_classes, in_shape=entry.in_shape,
                      embedded=entry.embedded, present=entry.present(settings.data_dir),
                      benchmark=entry.name in catalog.BENCHMARK_DATASETS, aliases=list(entry.aliases))
        for entry in sorted(catalog.DATASETS.values(), key=lambda e: e.name)
    ]
