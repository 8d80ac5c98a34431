"""/healthz: 200 when the database (and broker, when configured) answer; 503 naming what does not."""
from __future__ import annotations

import warnings

import pytest

from api.main import create_app
from knas.settings import Settings

with warnings.catch_warnings():  # starlette's TestClient warns about its httpx dependency; nothing to act on here
    warnings.filterwarnings("ignore", message=".*starlette.testclient.*")
    from fastapi.testclient import TestClient


class NoQueue:
    def submit(self, job_id: str, priority: int = 0) -> None:
        raise AssertionError("nothing is submitted in these tests")

    def close(self) -> None:
        return None


def test_embedded_server_is_healthy(http):
    response = http.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok", "broker": "in-process"}


@pytest.mark.parametrize("broker, status, expected", [
    ("redis://127.0.0.1:1/0", 503, "unavailable"),  # nothing listens on port 1
    (None, 200, "in-process"),
])
def test_broker_is_checked_when_configured(tmp_path, broker, status, expected):
    app = create_app(Settings(home=tmp_path, broker_url=broker), queue=NoQueue())
    with TestClient(app) as client:
        response = client.get("/healthz")
    assert response.status_code == status
    assert response.json()["broker"].startswith(expected) and response.json()["database"] == "ok"


def test_reachable_broker_is_ok(tmp_path, redis_url):
    with TestClient(create_app(Settings(home=tmp_path, broker_url=redis_url), queue=NoQueue())) as client:
        response = client.get("/healthz")
    assert response.status_code == 200 and response.json()["broker"] == "ok"
