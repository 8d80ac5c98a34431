"""Jobs: submit, list, inspect, export the ranking, cancel."""
from __future__ import annotations

import csv
import io
import logging
from typing import Annotated, Literal

from fastapi import APIRouter, Header, HTTPException, Query, Request, Response, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, StreamingResponse

from knas.jobspec import JobSpec, TrainStage
from knas.result import JobResult
from knas.settings import Settings
from sqlalchemy import Connection, Row, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from models import ACTIVE_STATES, JOB_STATES, Job, Store
from models.users import Principal, lock_user
from models.queries import job_summary, list_jobs, ranked_candidates
from worker.artifacts import artifacts_from_settings
from worker.export import read_card
from worker.jobs import SpecError, cancel_job, check_spec, create_job, delete_job, fail_job, job_status

from ..deps import CurrentUser, JobIdDep, JobIdPath, QueueDep, SettingsDep, StoreDep, job_not_found, job_row
from ..live import CACHE_HEADERS, Cursor, etag, job_events, not_modified, versioned_job
from ..schemas import CandidatePublic, CandidatesPublic, JobPublic, JobsPublic, Problem, Responses

log = logging.getLogger(__name__)

router = APIRouter(prefix="/v1/jobs", tags=["jobs"])

NOT_FOUND: Responses = {404: {"model": Problem, "description": "no such job"}}
CSV_COLUMNS = ("rank", "arch_index", "arch", "status", "score", "score_std", "params", "proxy_seconds",
               "valid_acc", "test_acc", "training_status", "worker", "error")



def invalid(loc: tuple[str | int, ...], msg: str) -> RequestValidationError:
    """A 422 shaped like FastAPI's own, for checks that need this server's settings or files."""
    return RequestValidationError([{"loc": ("body", *loc), "msg": msg, "type": "value_error"}])


def check_limits(spec: JobSpec, settings: Settings, user: Principal) -> None:
    """This server's ceilings (KNAS_MAX_*) and the user's quota, which JobSpec alone cannot know."""
    if user.max_candidates is not None and spec.candidate_count > user.max_candidates:
        raise invalid(("candidates",), f"the job has {spec.candidate_count} candidates; your quota allows at most "
                                       f"{user.max_candidates} per job (max-candidates of user {user.name!r})")
    if spec.candidate_count > settings.max_candidates:
        raise invalid(("candidates",), f"the job has {spec.candidate_count} candidates; this server allows at most "
                                       f"{settings.max_candidates} (KNAS_MAX_CANDIDATES)")
    if spec.proxy.batch_size > settings.max_probe_batch:
        raise invalid(("proxy", "batch_size"), f"probe batch {spec.proxy.batch_size} is larger than this server's "
                                               f"limit of {settings.max_probe_batch} (KNAS_MAX_PROBE_BATCH)")
    if isinstance(spec.final, TrainStage) and spec.final.epochs > settings.max_epochs:
        raise invalid(("final", "epochs"), f"{spec.final.epochs} epochs is more than this server's limit of "
                                           f"{settings.max_epochs} (KNAS_MAX_EPOCHS)")
    if spec.top_k > settings.max_top_k:
        raise invalid(("top_k",), f"top_k={spec.top_k} is more than this server's limit of {settings.max_top_k} "
                                  f"(KNAS_MAX_TOP_K)")
    if isinstance(spec.final, TrainStage):
        check_training(spec, spec.final, settings, user)
    if spec.priority > settings.max_user_priority and not user.admin:
        raise invalid(("priority",), f"priority {spec.priority} is for admins only; users may ask for at most "
                                     f"{settings.max_user_priority} (KNAS_MAX_USER_PRIORITY)")


def training_epochs(spec: JobSpec, final: TrainStage) -> int:
    """A job's training work in epochs: every top-k candidate's training, plus the winner's retraining."""
    return spec.top_k * final.epochs + final.retrain_epochs


def check_training(spec: JobSpec, final: TrainStage, settings: Settings, user: Principal) -> None:
    if final.batch_size is not None and final.batch_size > settings.max_batch_size:
        raise invalid(("final", "batch_size"), f"batch size {final.batch_size} is larger than this server's limit "
                                               f"of {settings.max_batch_size} (KNAS_MAX_BATCH_SIZE)")
    work = training_epochs(spec, final)
    how = (f"top_k {spec.top_k} x {final.epochs} epochs"
           + (f" + {final.retrain_epochs} retraining epochs" if final.retrain_epochs else ""))
    if user.max_training_epochs is not None and work > user.max_training_epochs:
        raise invalid(("final", "epochs"), f"the job trains {work} epochs ({how}); your quota allows at most "
                                           f"{user.max_training_epochs} per job (max-training-epochs of user "
                                           f"{user.name!r})")
    if work > settings.max_training_epochs:
        raise invalid(("final", "epochs"), f"the job trains {work} epochs ({how}); this server allows at most "
                                           f"{settings.max_training_epochs} per job (KNAS_MAX_TRAINING_EPOCHS)")


def _spec_error(error: SpecError, settings: Settings | None = None, user: Principal | None = None,
                store: Store | None = None) -> RequestValidationError:
    """The 422; server paths in it are for admins only (others see the setting's name instead)."""
    message = str(error)
    if settings is not None and user is not None and not user.admin:
        message = redact_paths(message, settings, store)
    return invalid(error.field or (), message)


def redact_paths(message: str, settings: Settings, store: Store | None = None) -> str:
    """Replace this server's directories (and registered folders' paths) with what names them."""
    places = [(str(p), "KNAS_DATA_DIR") for p in settings.data_roots]
    places += [(str(settings.benchmark_dir), "KNAS_BENCHMARK_DIR")] if settings.benchmark_dir else []
    places += [(str(settings.effective_artifact_dir), "KNAS_ARTIFACT_DIR"), (str(settings.home), "KNAS_HOME")]
    if store is not None:
        from worker.datasets import list_registered

        places += [(entry["path"], f"<the folder of dataset {entry['name']!r}>") for entry in list_registered(store)]
    for path, name in sorted(places, key=lambda place: -len(place[0])):  # the longest (most specific) first
        if path and path != ".":
            message = message.replace(path, f"<{name}>" if not name.startswith("<") else name)
    return message


def check_active_jobs(session: Session, settings: Settings, user: Principal) -> None:
    """429 when the user already has their limit of active (queued or running) jobs.

    Runs inside `create_job`'s transaction (its `guard`) with the user's row locked, so concurrent
    submissions by one user are counted one after the other: the quota is exact.
    """
    limit = user.max_jobs if user.max_jobs is not None else settings.user_max_jobs
    lock_user(session, user.name)
    active = session.execute(select(func.count()).select_from(Job)
                             .where(Job.owner == user.name, Job.status.in_(ACTIVE_STATES))).scalar_one()
    if active >= limit:
        source = f"max-jobs of user {user.name!r}" if user.max_jobs is not None else "KNAS_USER_MAX_JOBS"
        raise HTTPException(status.HTTP_429_TOO_MANY_REQUESTS,
                            f"you have {active} active jobs, the limit is {limit} ({source}); "
                            f"wait for one to finish or cancel one", headers={"Retry-After": "30"})


def _replayed(store: Store, user: Principal, key: str | None, spec: JobSpec) -> str | None:
    """The job this user's earlier POST with `key` created; 409 if that POST asked for another job."""
    if key is None:
        return None
    with store.session() as session:
        found = session.execute(select(Job.id, Job.spec).where(Job.owner == user.name,
                                                                Job.idempotency_key == key)).first()
    if found is None:
        return None
    try:
        same = check_spec(spec, store=store).model_dump(mode="json") == found.spec
    except SpecError:
        same = False
    if not same:
        raise HTTPException(status.HTTP_409_CONFLICT,
                            f"Idempotency-Key {key!r} was already used for a different job spec (job {found.id}); "
                            f"use a new key for a new job")
    return found.id


def _replay(response: Response, store: Store, job_id: str) -> JobPublic:
    """The answer to a repeated POST: the job its Idempotency-Key created the first time."""
    response.headers["Location"] = f"{router.prefix}/{job_id}"
    response.headers["Idempotent-Replayed"] = "true"
    return _job_public(store, job_id)


def _job_public(store: Store, job_id: str) -> JobPublic:
    with store.session() as session:
        return JobPublic.model_validate(job_summary(job_row(session, job_id)))


@router.post("", status_code=status.HTTP_202_ACCEPTED, response_model=JobPublic,
             responses={409: {"model": Problem, "description": "Idempotency-Key reused for another spec"},
                        413: {"model": Problem}, 422: {"model": Problem}, 429: {"model": Problem},
                        503: {"model": Problem}})
def submit_job(
    spec: JobSpec, response: Response, store: StoreDep, settings: SettingsDep, queue: QueueDep, user: CurrentUser,
    idempotency_key: Annotated[str | None, Header(min_length=1, max_length=128,
                                                  description="repeat a POST safely: one job per key and user")] = None,
) -> JobPublic:
    """Validate the spec against this server (names, files, limits, quota), store the job and enqueue it."""
    if (existing := _replayed(store, user, idempotency_key, spec)) is not None:
        return _replay(response, store, existing)
    check_limits(spec, settings, user)
    try:
        spec = check_spec(spec, settings.data_dir, settings.benchmark_dir, check_files=True, store=store,
                          roots=settings.dataset_roots())
    except SpecError as error:
        raise _spec_error(error, settings, user, store) from None
    try:
        job_id = create_job(store, spec, owner=user.name, idempotency_key=idempotency_key,
                            guard=lambda session: check_active_jobs(session, settings, user))
    except (HTTPException, IntegrityError):
        # A 429: a concurrent twin with our key may have made the job that fills the quota.
        # An IntegrityError: the same key raced us, and the other request created the job.
        if (existing := _replayed(store, user, idempotency_key, spec)) is None:
            raise
        return _replay(response, store, existing)
    except SpecError as error:  # e.g. a budget no arch meets at a registered folder's input size
        raise _spec_error(error, settings, user, store) from None
    try:
        queue.submit(job_id, spec.priority)
    except Exception as error:  # broker down: say so now rather than leave a job nobody will run
        log.exception("could not enqueue job %s", job_id)
        fail_job(store, job_id, f"could not enqueue the job: {error}")
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE,
                            f"the job queue is unavailable ({type(error).__name__}); job {job_id} was not started") from None
    response.headers["Location"] = f"{router.prefix}/{job_id}"
    return _job_public(store, job_id)


@router.get("", response_model=JobsPublic)
def get_jobs(
    store: StoreDep,
    user: CurrentUser,
    status_: Annotated[Literal[JOB_STATES] | None, Query(alias="status")] = None,  # type: ignore[valid-type]
    owner: str | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    offset: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,
) -> JobsPublic:
    """Newest first. Users see their own jobs; admins see everyone's (filter with `owner`)."""
    if not user.admin:
        if owner not in (None, user.name):
            return JobsPublic(data=[], count=0)
        owner = user.name
    with store.session() as session:
        jobs, total = list_jobs(session, status=status_, owner=owner, limit=limit, offset=offset)
        return JobsPublic(data=[JobPublic.model_validate(job_summary(job)) for job in jobs], count=total)


IfNoneMatch = Annotated[str | None, Header(max_length=2048, description="an ETag from an earlier answer: "
                                                                      "304 with no body if nothing changed")]
NOT_MODIFIED: Responses = {304: {"description": "not modified since the ETag sent in If-None-Match"}}


def _conditional(response: Response, tag: str, if_none_match: str | None) -> Response | None:
    """Set the answer's ETag; a 304 (no body) when the client's If-None-Match already names it."""
    if not_modified(if_none_match, tag):
        return Response(status_code=status.HTTP_304_NOT_MODIFIED, headers={"ETag": tag, **CACHE_HEADERS})
    response.headers.update({"ETag": tag, **CACHE_HEADERS})
    return None


def _visible_job(connection: Connection, job_id: str, user: Principal) -> tuple[Row, tuple]:
    found = versioned_job(connection, job_id, user)
    if found is None:
        raise job_not_found(job_id)
    return found


def _validators(response: Response) -> dict[str, str]:
    """The ETag and caching headers `_conditional` set, for an answer returned as its own Response."""
    return {k: v for k, v in response.headers.items() if k in ("etag", "cache-control", "vary")}


def _job_answer(connection: Connection, job_id: str, user: Principal, if_none_match: str | None,
                response: Response) -> JobPublic | Response:
    job, version = _visible_job(connection, job_id, user)  # one query: visibility, version and body
    if (unchanged := _conditional(response, etag("job", job_id, version), if_none_match)) is not None:
        return unchanged
    # job_summary takes a row of SUMMARY_COLUMNS as well as a Job (its docstring); its annotation names only Job
    return JobPublic.model_validate(job_summary(job))


@router.get("/{job_id}", response_model=JobPublic, responses={**NOT_FOUND, **NOT_MODIFIED})
async def get_job(job_id: JobIdPath, user: CurrentUser, store: StoreDep, response: Response,
                  if_none_match: IfNoneMatch = None):
    """The job with its progress. Send the ETag back in If-None-Match: 304 until the job moves."""
    return await store.read(_job_answer, job_id, user, if_none_match, response)


@router.get("/{job_id}/events", response_class=StreamingResponse,
            responses={**NOT_FOUND, 200: {"content": {"text/event-stream": {}},
                                          "description": "server-sent events: progress, stage, epoch, end"},
                       204: {"description": "the Last-Event-ID already included the job's end"}})
async def events(
    job_id: JobIdDep, store: StoreDep, settings: SettingsDep, request: Request,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID", max_length=8192,
                                                description="the id of the last event received: resume after it")] = None,
):
    """The job as it moves, pushed (text/event-stream) instead of polled.

    Events: `progress` (status and progress counts), `stage` (a status change), `epoch` (a new training
    epoch: training and candidate id, its metrics) and `end` (the job reached a final state; the stream
    then closes). Every event's `id` says what the client has been sent; reconnect with it in
    Last-Event-ID to get what changed since, and nothing twice. Comment lines keep an idle stream open;
    a stream closes after KNAS_EVENTS_MAX_SECONDS (reconnect to go on).
    """
    cursor = Cursor.parse(last_event_id)
    if cursor.ended:
        return Response(status_code=status.HTTP_204_NO_CONTENT)  # SSE: 204 tells the client to stop reconnecting
    stream = job_events(request, store, job_id, cursor, settings.events_poll_seconds,
                        settings.events_keepalive_seconds, settings.events_max_seconds)
    return StreamingResponse(stream, media_type="text/event-stream", headers={
        "Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


def _page(connection: Connection, job_id: str, user: Principal, if_none_match: str | None, response: Response,
          format: str, limit: int, offset: int) -> tuple[list[dict], int] | Response:
    job, version = _visible_job(connection, job_id, user)
    tag = etag("candidates", job_id, version, format=format, limit=limit, offset=offset)
    if (unchanged := _conditional(response, tag, if_none_match)) is not None:
        return unchanged
    # A version older than the page at worst (autocommit: two snapshots): the next poll then gets a 200, not a 304.
    return ranked_candidates(connection, job_id, limit=limit, offset=offset), job.n_candidates


@router.get("/{job_id}/candidates", response_model=CandidatesPublic,
            responses={**NOT_FOUND, **NOT_MODIFIED,
                       200: {"content": {"text/csv": {}}, "description": "ranked candidates"}})
async def get_candidates(
    job_id: JobIdPath,
    user: CurrentUser,
    store: StoreDep,
    response: Response,
    format: Literal["json", "csv"] = "json",
    limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
    offset: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,
    if_none_match: IfNoneMatch = None,
):
    """Best first (rank 1 = highest score); unranked candidates (still pending, or failed) last.

    With an ETag (per format, limit and offset): If-None-Match gets a 304 until the job moves."""
    page = await store.read(_page, job_id, user, if_none_match, response, format, limit, offset)
    if isinstance(page, Response):
        return page
    rows, total = page
    if format == "csv":
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        return Response(buffer.getvalue(), media_type="text/csv; charset=utf-8", headers={
            "Content-Disposition": f'attachment; filename="knas-{job_id}-candidates.csv"',
            "X-Total-Count": str(total), **_validators(response),
        })
    return CandidatesPublic(data=[CandidatePublic.model_validate(row) for row in rows], count=total)


@router.post("/{job_id}/cancel", status_code=status.HTTP_202_ACCEPTED, response_model=JobPublic,
             responses={**NOT_FOUND, 409: {"model": Problem, "description": "the job already finished"}})
def cancel(job_id: JobIdDep, store: StoreDep) -> JobPublic:
    """Stops scoring between candidates and training after the current epoch."""
    if not cancel_job(store, job_id):
        raise HTTPException(status.HTTP_409_CONFLICT,
                            f"job {job_id} already finished ({job_status(store, job_id)}); nothing to cancel")
    return _job_public(store, job_id)


def _export_missing(store: Store, job_id: str) -> HTTPException:
    """409 saying why a job has no exported model (yet)."""
    with store.session() as session:
        job = job_row(session, job_id)
        export = JobResult.model_validate(job.result).export if job.result else None
    if job.status in ACTIVE_STATES:
        reason = f"job {job_id} is {job.status}: its winner is exported when the job succeeds"
    elif export is not None and export.reason:
        reason = f"job {job_id} has no exported model: {export.reason}"
    elif job.status != "succeeded":
        reason = f"job {job_id} {job.status}: there is no winner to export"
    else:
        reason = f"job {job_id} has no exported model (final.mode={job.spec.get('final', {}).get('mode')!r})"
    return HTTPException(status.HTTP_409_CONFLICT, reason)


@router.get("/{job_id}/export", responses={**NOT_FOUND, 409: {"model": Problem, "description": "no winner yet"},
                                           200: {"content": {"application/zip": {}}}})
def export(job_id: JobIdDep, store: StoreDep, settings: SettingsDep):
    """The winner as a zip: TorchScript, ONNX, safetensors + arch.json, card.json and MODEL_CARD.md."""
    path = artifacts_from_settings(settings).export_zip(job_id)
    if not path.is_file():
        raise _export_missing(store, job_id)
    return FileResponse(path, media_type="application/zip", filename=f"knas-{job_id}-model.zip")


@router.get("/{job_id}/card", responses={**NOT_FOUND, 409: {"model": Problem, "description": "no winner yet"}})
def card(job_id: JobIdDep, store: StoreDep, settings: SettingsDep) -> dict:
    """The exported winner's model card (card.json), for the dashboard."""
    found = read_card(artifacts_from_settings(settings), job_id)
    if found is None:
        raise _export_missing(store, job_id)
    return found


@router.delete("/{job_id}", status_code=status.HTTP_204_NO_CONTENT,
               responses={**NOT_FOUND, 409: {"model": Problem, "description": "the job is still active"}})
def delete(job_id: JobIdDep, store: StoreDep, settings: SettingsDep) -> None:
    """Delete a finished job: its rows and its artifacts (checkpoints, exported model). Cancel it first."""
    if not delete_job(store, artifacts_from_settings(settings), job_id):
        raise HTTPException(status.HTTP_409_CONFLICT, f"job {job_id} is {job_status(store, job_id)}; "
                                                      f"cancel it first (POST /v1/jobs/{job_id}/cancel)")
