"""What this server can run: search spaces, proxies and datasets (the registries' metadata: torch-free)."""
from __future__ import annotations

from fastapi import APIRouter, HTTPException, status

from scorer.data import DATASETS
from scorer.proxies import PROXIES
from scorer.spaces import SPACES
from worker import datasets as registered

from ..deps import CurrentUser, SettingsDep, StoreDep
from ..schemas import DatasetCreate, DatasetPublic, Problem, ProxyPublic, SpacePublic

router = APIRouter(prefix="/v1", tags=["catalog"])


@router.get("/spaces", response_model=list[SpacePublic])
def list_spaces() -> list[SpacePublic]:
    return [
        SpacePublic(name=space.name, size=space.size, description=space.description, example=space.example,
                    aliases=sorted(SPACES.aliases_of(space.name)))
        for space in SPACES.infos()
    ]


@router.get("/proxies", response_model=list[ProxyPublic])
def list_proxies() -> list[ProxyPublic]:
    return [ProxyPublic(name=info.name, description=info.description, aliases=sorted(PROXIES.aliases_of(info.name)))
            for info in PROXIES.infos()]


@router.get("/datasets", response_model=list[DatasetPublic])
def list_datasets(settings: SettingsDep, store: StoreDep, user: CurrentUser) -> list[DatasetPublic]:
    """Built-in sets (`present`: a job on it would be accepted here) and registered image folders."""
    builtins = [
        DatasetPublic(name=info.name, num_classes=info.num_classes, in_shape=info.in_shape,
                      embedded=info.embedded, present=info.present(settings.data_dir),
                      benchmark=info.benchmark, aliases=list(DATASETS.aliases_of(info.name)))
        for info in DATASETS.infos()
    ]
    return builtins + [_folder_public(entry, user.admin) for entry in registered.list_registered(store)]


def _folder_public(entry: dict, admin: bool) -> DatasetPublic:
    return DatasetPublic(
        name=entry["name"], num_classes=entry["num_classes"], in_shape=tuple(entry["in_shape"]), embedded=False,
        present=True, benchmark=False, aliases=[], kind=entry["kind"], classes=entry["classes"],
        counts=entry["counts"], mean=entry["mean"], std=entry["std"], fingerprint=entry["fingerprint"],
        valid_source=entry["valid_source"], path=entry["path"] if admin else None,
        created_by=entry["created_by"], created_at=entry["created_at"])


def _admin(user: CurrentUser) -> None:
    if not user.admin:
        raise HTTPException(status.HTTP_403_FORBIDDEN, "registering or removing datasets is for admins; "
                                                       "ask one to run `knas datasets add NAME PATH`")


@router.post("/datasets", status_code=status.HTTP_201_CREATED, response_model=DatasetPublic,
             responses={403: {"model": Problem}, 409: {"model": Problem}, 422: {"model": Problem}})
def add_dataset(body: DatasetCreate, store: StoreDep, settings: SettingsDep, user: CurrentUser) -> DatasetPublic:
    """Validate an image folder on this server and register it (admins). Every image is decoded once,
    so a broken file is named now; paths outside KNAS_DATA_DIR's directories are refused."""
    from .jobs import invalid

    _admin(user)
    try:
        entry = registered.register(store, body.name, body.path, settings.dataset_roots(),
                                    image_size=body.image_size, channels=body.channels, created_by=user.name)
    except registered.DatasetExists as error:
        raise HTTPException(status.HTTP_409_CONFLICT, str(error)) from None
    except registered.DatasetError as error:
        raise invalid((error.field,), str(error)) from None
    return _folder_public(entry, admin=True)


@router.delete("/datasets/{name}", status_code=status.HTTP_204_NO_CONTENT,
               responses={403: {"model": Problem}, 404: {"model": Problem}})
def remove_dataset(name: str, store: StoreDep, user: CurrentUser) -> None:
    """Forget a registration (admins). The files stay; jobs keep the record they were run with."""
    _admin(user)
    if not registered.remove(store, name):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no registered dataset {name!r}")
