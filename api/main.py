"""The app factory: routers, error handlers, and a lifespan that opens the store and the queue.

Never imports torch: specs are validated by `knas.jobspec` + `worker.jobs.check_spec`
(pure Python); the embedded LocalQueue imports torch lazily in its own thread.
"""
from __future__ import annotations

import gc
import logging
from contextlib import asynccontextmanager
from http import HTTPStatus
from typing import Any, AsyncIterator
from urllib.parse import parse_qsl

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError, DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from knas.settings import Settings, get_settings
from models import Store
from models.users import LOCAL_USER, ensure_local_user
from scorer import __version__
from worker.runner import LocalQueue

from .deps import AuthCache, get_current_user, make_auth_limiter
from .dispatch import JobQueue, make_queue
from .routes import catalog, dashboard, health, jobs, metrics, views, workers
from .watchdog import StallWatchdog

log = logging.getLogger("knas.api")

MAX_BODY_BYTES = 1 << 20  # a job spec is a few hundred bytes; even a long arch list fits easily


def create_app(settings: Settings | None = None, queue: JobQueue | None = None) -> FastAPI:
    """The API. `queue` overrides the one settings choose (the caller then owns and closes it)."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # The embedded store is migrated on open; a service database is only checked (`knas db upgrade`
        # migrates it; `knas serve` checked it already, so a stale schema is one line, not this traceback).
        store = Store(settings.effective_database_url)
        if settings.embedded:  # one local admin; clients on this host read its token from HOME/token
            token_file = ensure_local_user(store, settings.home)
            log.warning("embedded mode: single local user %r (admin); its API token is in %s", LOCAL_USER, token_file)
        job_queue = queue if queue is not None else make_queue(settings, store)
        if isinstance(job_queue, LocalQueue):
            resumed = job_queue.resume_unfinished()  # jobs a previous (killed) server left active
            if resumed:
                log.info("resuming %d unfinished job(s)", resumed)
        app.state.store, app.state.queue = store, job_queue
        watchdog = None
        if not isinstance(job_queue, LocalQueue):  # workers may all be gone: stalled jobs still end, with a reason
            watchdog = StallWatchdog(store, settings.stall_timeout, settings.sweep_interval)
            watchdog.start()
        # What import and startup made (modules, routes, mappers: most of the heap) lives as long as
        # the process: in the permanent generation, full collections no longer walk it. Without this
        # each full collection under load paused the loop for 30-100 ms (p99 of status polls 78 ms at a
        # p50 of 6 ms; docs/benchmarks.md).
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            if watchdog is not None:
                watchdog.stop()
            if queue is None:
                job_queue.close()
            app.state.health.close()
            await store.dispose_async()
            store.dispose()

    # Swagger UI and ReDoc load their scripts from a CDN; on the dashboard's origin, where the token lives in
    # sessionStorage, that is someone else's code. Only the embedded (single local user) server serves them.
    docs = settings.embedded
    app = FastAPI(title="knas", version=__version__, lifespan=lifespan,
                  docs_url="/docs" if docs else None, redoc_url="/redoc" if docs else None,
                  description="Training-free neural architecture search (KNAS gradient kernel) as a service.")
    app.state.settings = settings
    app.state.health = health.HealthCheck(settings.broker_url)
    app.state.auth_limiter = make_auth_limiter(settings)  # in Redis when the broker is: shared by API processes
    app.state.auth_cache = AuthCache(settings.auth_cache_seconds)
    for router in (jobs.router, catalog.router, workers.router, views.router, views.me_router):  # /v1: a token on every route
        app.include_router(router, dependencies=[Depends(get_current_user)])
    for router in (health.router, metrics.router, dashboard.router):  # probes, and the dashboard's pages (no data)
        app.include_router(router)
    add_error_handlers(app)
    app.add_middleware(BodySizeLimit, max_bytes=MAX_BODY_BYTES)
    app.add_middleware(RefuseNulBytes)
    metrics.install(app)  # outermost: it also counts 413s and 500s
    return app


# ---------------------------------------------------------------- errors: always a Problem, never a traceback

def problem(status: int, detail: str, errors: list[dict[str, Any]] | None = None,
            headers: dict[str, str] | None = None) -> JSONResponse:
    body: dict[str, Any] = {"title": HTTPStatus(status).phrase, "status": status, "detail": detail}
    if errors is not None:
        body["errors"] = errors
    return JSONResponse(body, status_code=status, headers=headers, media_type="application/problem+json")


def _field_error(error: dict[str, Any]) -> dict[str, Any]:
    msg = str(error.get("msg", "invalid")).removeprefix("Value error, ")
    if error.get("type") == "json_invalid":
        reason = (error.get("ctx") or {}).get("error", "")
        msg = f"the request body is not valid JSON{': ' + reason if reason else ''}"
    return {"loc": [p if isinstance(p, int) else str(p) for p in error.get("loc", ())], "msg": msg,
            "type": str(error.get("type", "value_error"))}


def _summary(error: dict[str, Any]) -> str:
    loc = error["loc"]
    if loc and loc[0] == "body":
        if len(loc) == 1 and error["type"] == "missing":
            return "the request body is missing: send a JSON job spec"
        loc = loc[1:] if error["type"] != "json_invalid" else []
    where = ".".join(str(p) for p in loc)
    if not where or error["msg"].startswith(str(loc[-1])):  # the message already names the field
        return error["msg"]
    return f"{where}: {error['msg']}"


_NOT_AN_OBJECT = ("model_attributes_type", "dict_type", "model_type")


def _is_json(content_type: str | None) -> bool:
    media = (content_type or "").split(";", 1)[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


async def on_validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    errors = [_field_error(e) for e in exc.errors()] or [{"loc": [], "msg": "invalid request", "type": "invalid"}]
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    detail = _summary(errors[0])
    if errors[0]["loc"] == ["body"] and errors[0]["type"] in _NOT_AN_OBJECT:  # say what was wrong with the body
        content_type = request.headers.get("content-type")
        if not _is_json(content_type):
            detail = (f"the request body must be JSON, sent with Content-Type: application/json "
                      f"(got {content_type!r}): {detail}")
        else:
            detail = f"the request body must be a JSON object (a job spec): {detail}"
    return problem(422, detail + more, errors)


async def on_http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
    detail = str(exc.detail)
    if exc.status_code == 400 and detail == "There was an error parsing the body":  # FastAPI's words for e.g. RecursionError
        detail = "the request body could not be parsed: send one JSON object (is it nested too deeply?)"
    return problem(exc.status_code, detail, headers=getattr(exc, "headers", None))


async def on_database_error(request: Request, exc: Exception) -> JSONResponse:
    log.error("database error on %s %s: %s", request.method, request.url.path, exc)
    cause = getattr(exc, "orig", None) or exc
    reason = (str(cause).strip().splitlines() or [type(cause).__name__])[0][:300]
    return problem(503, f"the database is unavailable, try again later ({reason})")


async def on_data_error(request: Request, exc: Exception) -> JSONResponse:
    """A value the database refuses to store (not an outage): the client's to change, so a 422."""
    cause = getattr(exc, "orig", None) or exc
    reason = (str(cause).strip().splitlines() or [type(cause).__name__])[0][:300]
    log.info("value refused by the database on %s %s: %s", request.method, request.url.path, reason)
    return problem(422, f"a value of the request cannot be stored: {reason}")


async def on_unexpected_error(_request: Request, _exc: Exception) -> JSONResponse:
    return problem(500, "internal server error; the server log has the details")


def add_error_handlers(app: FastAPI) -> None:
    # Starlette types a handler as taking any Exception; it passes each one only the class it is registered for.
    app.add_exception_handler(RequestValidationError, on_validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, on_http_error)  # type: ignore[arg-type]
    app.add_exception_handler(DataError, on_data_error)  # a bad value, e.g. one PostgreSQL cannot hold
    app.add_exception_handler(DBAPIError, on_database_error)  # OperationalError, InterfaceError, ...
    app.add_exception_handler(PoolTimeoutError, on_database_error)
    app.add_exception_handler(Exception, on_unexpected_error)


class RefuseNulBytes:
    """422 for a NUL byte in a query parameter, naming the parameter.

    PostgreSQL text cannot hold NUL (0x00): such a value would reach the database only to be refused
    there. Refusing it at the door says which parameter to fix. Path parameters are checked by their
    routes (a job id must be a UUID: 404), JSON bodies by their models, and `on_data_error` answers
    422 for anything that still gets through."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            query = scope.get("query_string", b"")
            if b"%00" in query or b"\x00" in query:  # cheap test first: almost no request has either
                pairs = parse_qsl(query.decode("latin-1"), keep_blank_values=True)
                name = next((k for k, v in pairs if "\x00" in k or "\x00" in v), None)
                if name is not None:
                    name = name.replace("\x00", "\\0")
                    response = problem(422, f"query parameter {name!r} contains a NUL byte (0x00), which no "
                                       "field accepts", [{"loc": ["query", name], "msg": "contains a NUL byte",
                                                          "type": "value_error"}])
                    await response(scope, receive, send)
                    return
        await self.app(scope, receive, send)


class BodySizeLimit:
    """413 for request bodies over `max_bytes`, declared (Content-Length) or streamed (chunked)."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        length = headers.get(b"content-length")
        if length is not None:
            if length.isdigit() and int(length) > self.max_bytes:
                await self._reject(scope, receive, send)
            else:  # the server stops reading at Content-Length
                await self.app(scope, receive, send)
            return
        if b"chunked" not in headers.get(b"transfer-encoding", b""):
            await self.app(scope, receive, send)
            return
        buffered: list[Message] = []
        size = 0
        while True:
            message = await receive()
            buffered.append(message)
            if message["type"] != "http.request":
                break
            size += len(message.get("body", b""))
            if size > self.max_bytes:
                await self._reject(scope, receive, send)
                return
            if not message.get("more_body", False):
                break

        async def replay() -> Message:
            return buffered.pop(0) if buffered else await receive()

        await self.app(scope, replay, send)

    async def _reject(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = problem(413, f"the request body is larger than {self.max_bytes // 1024} KiB")
        await response(scope, receive, send)
