"""Creating jobs and moving them between states: torch-free, so the API can use it too.

Every state change is a conditional UPDATE (`models.repository.transition`): whichever process
gets there first wins, the others see False and do nothing.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from sqlalchemy import select
from sqlalchemy.orm import Session

from knas.jobspec import JobSpec
from models import ACTIVE_STATES, Candidate, Job, Store, repository, utcnow
from models.base import changed, table
from scorer.data import DATASETS, benchmark_datasets
from scorer.proxies import PROXIES
from scorer.seeding import candidate_seed
from scorer.spaces import get_space


class SpecError(ValueError):
    """A job spec that names something this installation does not have; `field` is where (a path)."""

    def __init__(self, message: str, field: tuple[str, ...] | None = None) -> None:
        super().__init__(message)
        self.field = field


def delete_job(store: Store, artifacts, job_id: str) -> bool:
    """Delete a job that is no longer active, with its candidates, trainings and artifacts."""
    from sqlalchemy import delete

    with store.session() as session:
        gone = changed(session, delete(Job).where(Job.id == job_id, Job.status.not_in(ACTIVE_STATES))
                       .execution_options(synchronize_session=False))
    if gone:
        artifacts.delete_job(job_id)
    return bool(gone)


def job_status(store: Store, job_id: str) -> str | None:
    with store.session() as session:
        return session.scalar(select(Job.status).where(Job.id == job_id))


def cancel_job(store: Store, job_id: str) -> bool:
    with store.session() as session:
        done = repository.transition(session, job_id, ACTIVE_STATES, "cancelled", finished_at=utcnow())
        if done:
            repository.close_open_stages(session, job_id)
        return done


def fail_job(store: Store, job_id: str, reason: str) -> bool:
    with store.session() as session:
        done = repository.transition(session, job_id, ACTIVE_STATES, "failed", finished_at=utcnow(), error=reason[:4000])
        if done:
            repository.close_open_stages(session, job_id)
        return done


def check_spec(spec: JobSpec, data_dir: Path | None = None, benchmark_dir: Path | None = None,
               check_files: bool = False, store: Store | None = None,
               roots: list[Path] | None = None) -> JobSpec:
    """Names must exist here; with `check_files`, the dataset/benchmark files must be on this server.

    A dataset that is not built in may be one registered in `store` (an image folder); with
    `check_files` its folder must still be inside `roots` and unchanged since registration.
    Returns the spec with the proxy and dataset names made canonical.
    """
    try:
        proxy = PROXIES.canonical(spec.proxy.name)
    except ValueError as error:
        raise SpecError(str(error), ("proxy", "name")) from None
    options = PROXIES.info(proxy).options  # no built-in proxy reads any: every key is refused, not echoed
    unknown = sorted(set(spec.proxy.options) - options)
    if unknown:
        accepted = sorted(options)
        raise SpecError(f"proxy {proxy!r} has no option {', '.join(map(repr, unknown))}; it accepts "
                        f"{', '.join(accepted) if accepted else 'no options'}", ("proxy", "options"))
    try:
        dataset = DATASETS.info(spec.dataset)
    except ValueError as error:
        record = registered_dataset(store, spec.dataset) if store is not None else None
        if record is None:
            raise SpecError(str(error) + _registered_hint(store), ("dataset",)) from None
        if spec.final.mode == "benchmark":
            raise SpecError(f"benchmark mode looks up {', '.join(benchmark_datasets())}, "
                            f"not the image folder {spec.dataset!r}", ("final", "mode")) from None
        if check_files:
            from .datasets import DatasetError, check_present

            try:
                check_present(record, roots)
            except DatasetError as problem:
                raise SpecError(str(problem), ("dataset",)) from None
        return spec.model_copy(update={"proxy": spec.proxy.model_copy(update={"name": proxy})})
    if spec.final.mode == "benchmark":
        if not dataset.benchmark:
            raise SpecError(f"benchmark mode looks up {', '.join(benchmark_datasets())}, not {dataset.name!r}",
                            ("final", "mode"))
        if check_files:
            from scorer.benchmark import BenchmarkNotFoundError, find_benchmark

            try:
                find_benchmark(spec.space, benchmark_dir)
            except (BenchmarkNotFoundError, ValueError) as error:
                raise SpecError(f"final.mode=benchmark: {error}", ("final", "mode")) from None
    if check_files and not dataset.present(data_dir):
        where = f"under {data_dir}" if data_dir else "(KNAS_DATA_DIR is not set on the server)"
        raise SpecError(f"dataset {dataset.name!r} is not present on this server {where}", ("dataset",))
    return spec.model_copy(update={"dataset": dataset.name, "proxy": spec.proxy.model_copy(update={"name": proxy})})


def registered_dataset(store: Store, name: str) -> dict | None:
    """The job record (`jobs.data`) of the dataset registered as `name`, or None."""
    from .datasets import NAME, find, job_record

    if not isinstance(name, str) or not NAME.match(name):  # not a registrable name (NUL bytes, …): no lookup
        return None
    row = find(store, name)
    return job_record(row) if row is not None else None


def _registered_hint(store: Store | None) -> str:
    if store is None:
        return ""
    from .datasets import list_registered

    names = [entry["name"] for entry in list_registered(store)]
    registered = f"; registered image folders: {', '.join(names)}" if names else ""
    return registered + " (register an image folder with `knas datasets add NAME PATH`)"


def create_job(store: Store, spec: JobSpec, owner: str | None = None, idempotency_key: str | None = None,
               guard: Callable[[Session], None] | None = None) -> str:
    """Write the job and all its candidates (once each) in one transaction.

    `guard(session)` runs first in that transaction (e.g. a quota check that locks the owner's row and
    counts their jobs); whatever it raises aborts the job, so a check and the insert are one atomic step.
    """
    spec = check_spec(spec, store=store)
    data = None if _builtin(spec.dataset) else registered_dataset(store, spec.dataset)
    space = get_space(spec.space)
    try:  # a registered folder's shape decides params/FLOPs of the budget (constraints)
        archs = spec.resolve_archs(**_shape(data)) if data else spec.resolve_archs()
    except ValueError as error:
        raise SpecError(str(error), ("constraints",)) from None
    evolution = spec.candidates.strategy == "evolution"  # generation 0 now, the others bred from scores
    with store.session() as session:
        if guard is not None:
            guard(session)
        job = Job(
            owner=owner, status="queued", priority=spec.priority, spec=spec.model_dump(mode="json"),
            space=spec.space, dataset=spec.dataset, proxy=spec.proxy.name,
            n_candidates=spec.candidate_count if evolution else len(archs), top_k=spec.top_k, timings={},
            idempotency_key=idempotency_key, data=data, generation=0 if evolution else None,
            candidates_total=len(archs),
        )
        session.add(job)
        session.flush()
        rows = [
            {"job_id": job.id, "arch": arch, "arch_index": space.index(arch),
             "seed": candidate_seed(spec.seed, arch), "status": "pending", "generation": 0 if evolution else None}
            for arch in archs
        ]
        for start in range(0, len(rows), 5000):
            session.execute(table(Candidate).insert(), rows[start : start + 5000])
        return job.id


def _shape(data: dict) -> dict:
    """A registered folder's classes and input shape (jobs.data), as resolve_archs and budgets take them."""
    summary = data["summary"]
    size = summary["image_size"]
    return {"num_classes": len(summary["classes"]), "in_shape": (summary["channels"], size, size)}


def dataset_shape(dataset: str, data: dict | None) -> dict:
    """The job's classes and input shape: its registered folder's, else the built-in set's."""
    if data:
        return _shape(data)
    info = DATASETS.info(dataset)
    return {"num_classes": info.num_classes, "in_shape": tuple(info.in_shape)}


def _builtin(name: str) -> bool:
    return name in DATASETS
