"""A small HTTP client for a knas server (used by `knas submit/status/results` and by tests).

Every failure becomes `KnasClientError` with one line a person can act on:
the server's own message for 4xx/5xx, or what went wrong reaching it.
"""
from __future__ import annotations

import time
from typing import Any, Callable

import httpx

from knas.jobspec import JobSpec
from models import FINAL_STATES


class KnasClientError(Exception):
    """A request that did not give the expected answer; str() is the one-line reason."""

    def __init__(self, message: str, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code


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

    def wait(self, job_id: str, timeout: float | None = None, interval: float = 1.0,
             on_update: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
        """Poll until the job ends; returns its last state. `timeout` None waits for ever."""
        deadline = None if timeout is None else time.monotonic() + timeout
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
                raise KnasClientError(f"job {job_id} is still {job['status']} after {timeout:g} s")
            time.sleep(interval)


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
