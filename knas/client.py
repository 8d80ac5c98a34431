"""A small HTTP client for a knas server (used by `knas submit/status/results` and by tests).

Every failure becomes `KnasClientError` with one line a person can act on:
the server's own message for 4xx/5xx, or what went wrong reaching it.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import httpx

from knas.jobspec import JobSpec
from models import FINAL_STATES


class KnasClientError(Exception):
    """A request that did not give the expected answer; str() is the one-line reason."""

    def __init__(self, message: str, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code


class WaitTimeout(KnasClientError):
    """`wait` ran out of time before the job ended."""


@dataclass
class Event:
    """One server-sent event: `kind` (progress, stage, epoch, end), its JSON `data` and its `id`."""

    kind: str
    data: dict[str, Any]
    id: str | None


class StreamUnavailable(Exception):
    """The event stream could not be opened or broke off; the caller falls back to polling."""


class KnasClient:
    def __init__(self, server: str, timeout: float = 30.0, transport: httpx.BaseTransport | None = None,
                 token: str | None = None) -> None:
        self.server = server.rstrip("/")
        headers = {"Accept": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self._http = httpx.Client(base_url=self.server, timeout=timeout, transport=transport, headers=headers)

    def __enter__(self) -> "KnasClient":
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    # ------------------------------------------------------------ requests

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.ConnectError as error:
            raise KnasClientError(f"cannot reach the knas server at {self.server} ({_reason(error)}); "
                                  f"start one with `knas serve` or pass --server / set KNAS_SERVER") from None
        except httpx.TimeoutException:
            raise KnasClientError(f"the knas server at {self.server} did not answer in time") from None
        except httpx.HTTPError as error:
            raise KnasClientError(f"request to {self.server}{path} failed: {_reason(error)}") from None
        if response.status_code >= 400:
            message = f"{response.status_code} {_server_message(response)}"
            if response.status_code == 401 and "Authorization" not in self._http.headers:
                message += "; set KNAS_TOKEN to your API token"
            raise KnasClientError(message, response.status_code)
        return response

    def submit(self, spec: JobSpec | dict[str, Any], idempotency_key: str | None = None) -> dict[str, Any]:
        body = spec.model_dump(mode="json") if isinstance(spec, JobSpec) else spec
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        return self.request("POST", "/v1/jobs", json=body, headers=headers).json()

    def job(self, job_id: str) -> dict[str, Any]:
        return self.request("GET", f"/v1/jobs/{job_id}").json()

    def jobs(self, status: str | None = None, owner: str | None = None, limit: int = 50,
             offset: int = 0) -> dict[str, Any]:
        params = {k: v for k, v in {"status": status, "owner": owner, "limit": limit, "offset": offset}.items()
                  if v is not None}
        return self.request("GET", "/v1/jobs", params=params).json()

    def candidates(self, job_id: str, limit: int = 100, offset: int = 0) -> dict[str, Any]:
        return self.request("GET", f"/v1/jobs/{job_id}/candidates",
                            params={"limit": limit, "offset": offset}).json()

    def candidates_csv(self, job_id: str, limit: int = 100, offset: int = 0) -> str:
        return self.request("GET", f"/v1/jobs/{job_id}/candidates",
                            params={"format": "csv", "limit": limit, "offset": offset}).text

    def cancel(self, job_id: str) -> dict[str, Any]:
        return self.request("POST", f"/v1/jobs/{job_id}/cancel").json()

    def spaces(self) -> list[dict[str, Any]]:
        return self.request("GET", "/v1/spaces").json()

    def proxies(self) -> list[dict[str, Any]]:
        return self.request("GET", "/v1/proxies").json()

    def datasets(self) -> list[dict[str, Any]]:
        return self.request("GET", "/v1/datasets").json()

    def workers(self) -> list[dict[str, Any]]:
        return self.request("GET", "/v1/workers").json()

    def health(self) -> dict[str, Any]:
        """The health body, also when the server answers 503 (it says what is down)."""
        try:
            return self.request("GET", "/healthz").json()
        except KnasClientError as error:
            if error.status_code == 503:
                return self._http.get("/healthz").json()
            raise

    def events(self, job_id: str, last_event_id: str | None = None) -> Iterator[Event]:
        """The job's server-sent events (GET /v1/jobs/{id}/events) until the stream closes.

        Raises KnasClientError for a 4xx answer (404: no such job, or not yours), StreamUnavailable when
        the stream cannot be opened or breaks off (the server is older, restarting, or a proxy cut it).
        """
        headers = {"Accept": "text/event-stream"}
        if last_event_id:
            headers["Last-Event-ID"] = last_event_id
        try:
            with self._http.stream("GET", f"/v1/jobs/{job_id}/events", headers=headers) as response:
                if response.status_code == 204:  # the last id we had was the job's end
                    return
                if response.status_code >= 400:
                    response.read()
                    raise KnasClientError(f"{response.status_code} {_server_message(response)}",
                                          response.status_code)
                if not response.headers.get("content-type", "").startswith("text/event-stream"):
                    raise StreamUnavailable(f"not an event stream: {response.headers.get('content-type')}")
                yield from _parse_events(response.iter_lines())
        except httpx.HTTPError as error:
            raise StreamUnavailable(_reason(error)) from None

    def wait(self, job_id: str, timeout: float | None = None, interval: float = 1.0,
             on_update: Callable[[dict[str, Any]], None] | None = None, stream: bool = True) -> dict[str, Any]:
        """Follow the job until it ends; returns its last state. `timeout` None waits for ever.

        Pushed progress (the event stream) when the server has it, else (or when it breaks) polling.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        if stream:
            try:
                job = self._follow(job_id, deadline, timeout, on_update)
                if job is not None:
                    return job
            except StreamUnavailable:
                pass  # poll instead
            except KnasClientError as error:
                # 404/405: a server without the stream (the job itself was just read); 5xx or unreachable: an
                # outage, which polling rides out with back-off. Anything else (401, 403, a timeout) is final.
                if isinstance(error, WaitTimeout) or (error.status_code not in (404, 405) and not _temporary(error)):
                    raise
        return self._poll(job_id, deadline, timeout, interval, on_update)

    def _follow(self, job_id: str, deadline: float | None, timeout: float | None,
                on_update: Callable[[dict[str, Any]], None] | None) -> dict[str, Any] | None:
        """Follow the event stream (reconnecting where it left off when it closes); None: it gave up."""
        job = self.job(job_id)
        last_id: str | None = None
        if job["status"] in FINAL_STATES:
            if on_update is not None:
                on_update(job)
            return job
        for _attempt in range(1000):  # a stream lasts KNAS_EVENTS_MAX_SECONDS; then we reconnect
            for event in self.events(job_id, last_id):
                last_id = event.id or last_id
                if event.kind in ("progress", "stage"):
                    job.update({k: event.data[k] for k in ("status", "progress", "timings") if k in event.data})
                    if on_update is not None:
                        on_update(job)
                elif event.kind == "end":
                    job = self.job(job_id)
                    if on_update is not None:
                        on_update(job)
                    return job
                if deadline is not None and time.monotonic() > deadline:
                    raise WaitTimeout(f"job {job_id} is still {job['status']} after {timeout:g} s")
            if deadline is not None and time.monotonic() > deadline:
                raise WaitTimeout(f"job {job_id} is still {job['status']} after {timeout:g} s")
            if last_id is None:  # closed before saying anything: not a stream we can follow
                return None
            job = self.job(job_id)
            if job["status"] in FINAL_STATES:  # it ended while we reconnected
                if on_update is not None:
                    on_update(job)
                return job
        return None

    def _poll(self, job_id: str, deadline: float | None, timeout: float | None, interval: float,
              on_update: Callable[[dict[str, Any]], None] | None) -> dict[str, Any]:
        outage = interval
        while True:
            try:
                job = self.job(job_id)
            except KnasClientError as error:
                # An API restart or a database outage is not the job's end: keep asking, backing off.
                if not _temporary(error) or (deadline is not None and time.monotonic() > deadline):
                    raise
                time.sleep(outage)
                outage = min(outage * 2, 30.0)
                continue
            outage = interval
            if on_update is not None:
                on_update(job)
            if job["status"] in FINAL_STATES:
                return job
            if deadline is not None and time.monotonic() > deadline:
                raise WaitTimeout(f"job {job_id} is still {job['status']} after {timeout:g} s")
            time.sleep(interval)


def _parse_events(lines: Iterator[str]) -> Iterator[Event]:
    """text/event-stream lines -> events (the WHATWG rules: id, event, data; ':' starts a comment)."""
    kind, data, event_id = "message", list[str](), None
    for line in lines:
        if not line:
            if data:
                try:
                    payload = json.loads("\n".join(data))
                except ValueError:
                    payload = {"text": "\n".join(data)}
                yield Event(kind, payload if isinstance(payload, dict) else {"value": payload}, event_id)
            kind, data = "message", []
            continue
        if line.startswith(":"):
            continue
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "event":
            kind = value
        elif name == "data":
            data.append(value)
        elif name == "id" and "\0" not in value:
            event_id = value


def _temporary(error: KnasClientError) -> bool:
    """Unreachable, timed out, or 502/503/504: the server may answer again in a moment."""
    return error.status_code is None or error.status_code in (502, 503, 504)


def _reason(error: Exception) -> str:
    text = str(error) or type(error).__name__
    return text.split("] ", 1)[-1] if text.startswith("[Errno") else text


def _server_message(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()[:300] or response.reason_phrase
    detail = body.get("detail") if isinstance(body, dict) else None
    if isinstance(detail, str):
        return detail
    if isinstance(detail, list) and detail:  # FastAPI's default shape, from a server without our handlers
        first = detail[0]
        return f"{'.'.join(str(p) for p in first.get('loc', ()))}: {first.get('msg')}"
    return response.reason_phrase
