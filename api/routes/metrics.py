"""`/metrics` in Prometheus text format.

HTTP requests are counted and timed by method, route template and status class;
every label takes values from a fixed set (a standard method else "other", a
route template else "unmatched", "2xx".."5xx"), so no request can add series.
Jobs by status are read from the store on each scrape, so they are right
whichever process moved the jobs.

Under `knas serve --workers N` (PROMETHEUS_MULTIPROC_DIR set, by `knas serve`, to a private
directory) every process writes its counters there and a scrape, whichever process answers it,
adds up all of them (`prometheus_client.multiprocess`).
"""
from __future__ import annotations

import time

from fastapi import APIRouter, FastAPI, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from sqlalchemy import func, select
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from models import JOB_STATES, Job

from ..deps import StoreDep

router = APIRouter(tags=["metrics"])


class JobsCollector:
    """knas_jobs{status}: counted in the store at scrape time (right whichever process moved the jobs)."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}

    def collect(self):
        family = GaugeMetricFamily("knas_jobs", "jobs in the store by status", labels=["status"])
        for state in JOB_STATES:
            family.add_metric([state], self.counts.get(state, 0))
        yield family


class Metrics:
    """One registry per app, so several apps in one process (tests) do not clash.

    In multiprocess mode the counters are written to PROMETHEUS_MULTIPROC_DIR (prometheus_client picks
    that at import) and a scrape reads every process's files into a fresh registry.
    """

    def __init__(self, multiprocess: str | None = None) -> None:
        self.registry = CollectorRegistry()
        self.multiprocess = multiprocess  # PROMETHEUS_MULTIPROC_DIR, set by `knas serve --workers N`
        self.requests = Counter("knas_http_requests", "HTTP requests by method, route and status class",
                                ["method", "route", "status"], registry=self.registry)
        self.latency = Histogram("knas_http_request_duration_seconds", "HTTP request latency by route",
                                 ["method", "route"], registry=self.registry,
                                 buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
        self.jobs = JobsCollector()
        if not self.multiprocess:
            self.registry.register(self.jobs)

    def exposition(self) -> bytes:
        if not self.multiprocess:
            return generate_latest(self.registry)
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=self.multiprocess)
        registry.register(self.jobs)
        return generate_latest(registry)


METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"})


def method_label(method: str) -> str:
    return method if method in METHODS else "other"


def route_label(scope: Scope) -> str:
    """The matched route's template (from the app's own routes, a fixed set), else "unmatched"."""
    path = getattr(scope.get("route"), "path", None)
    return path if isinstance(path, str) else "unmatched"


def status_label(code: int) -> str:
    return f"{code // 100}xx" if 100 <= code <= 599 else "other"


class MetricsMiddleware:
    """Pure ASGI middleware (no BaseHTTPMiddleware): counts every HTTP response, errors included."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status_code = 500
        start = time.perf_counter()

        async def send_and_record(message: Message) -> None:
            nonlocal status_code
            if message["type"] == "http.response.start":
                status_code = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_record)
        finally:
            method, route = method_label(scope["method"]), route_label(scope)
            self.metrics.requests.labels(method, route, status_label(status_code)).inc()
            self.metrics.latency.labels(method, route).observe(time.perf_counter() - start)


def install(app: FastAPI) -> None:
    app.state.metrics = Metrics(app.state.settings.prometheus_multiproc_dir)
    app.add_middleware(MetricsMiddleware, metrics=app.state.metrics)


@router.get("/metrics", response_class=Response,
            responses={200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "Prometheus text format"}})
def metrics(request: Request, store: StoreDep) -> Response:
    metrics: Metrics = request.app.state.metrics
    with store.session() as session:
        counts = dict(session.execute(select(Job.status, func.count()).group_by(Job.status)).all())
    metrics.jobs.counts = counts
    return Response(metrics.exposition(), media_type=CONTENT_TYPE_LATEST)
