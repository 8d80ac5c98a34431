"""A NUL byte (0x00) in a request is the client's mistake, not a database outage: 422 naming the parameter.

PostgreSQL text cannot hold NUL; before this, `GET /v1/jobs?owner=%00` reached the database and came
back as 503 "the database is unavailable" (found by the reliability suite's schemathesis run).
"""
from __future__ import annotations

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.exc import DataError, OperationalError

from api.main import add_error_handlers


def test_a_nul_in_a_query_parameter_is_a_422_naming_it_on_postgresql(pg_server):
    with pg_server.http() as http:
        refused = http.get("/v1/jobs", params={"owner": "a\x00b"})
        assert refused.status_code == 422, refused.text
        assert "'owner'" in refused.json()["detail"] and refused.json()["errors"][0]["loc"] == ["query", "owner"]
        # a literal "%00" (sent as %2500) is text like any other, and the route still answers
        assert http.get("/v1/jobs", params={"owner": "%00"}).status_code == 200
        assert http.get("/v1/jobs", params={"owner": "alice"}).status_code == 200


def test_a_nul_in_a_path_parameter_is_the_route_s_4xx_not_a_503_on_postgresql(pg_server):
    with pg_server.http() as http:
        job = http.get("/v1/jobs/abc%00def")  # job ids are UUIDs: checked before any query
        dataset = http.delete("/v1/datasets/a%00b")  # a registered name never holds one: no such dataset
    assert job.status_code == 404, job.text
    assert dataset.status_code == 404 and "no registered dataset" in dataset.json()["detail"], dataset.text


@pytest.mark.parametrize("error, status", [
    (DataError("INSERT ...", {}, ValueError("PostgreSQL text fields cannot contain NUL (0x00) bytes")), 422),
    (OperationalError("SELECT ...", {}, ValueError("server closed the connection; cannot contain NUL")), 503),
])
def test_a_value_the_database_refuses_is_the_client_s_422_an_outage_stays_503(error, status):
    app = FastAPI()
    add_error_handlers(app)

    @app.get("/boom")
    def boom() -> None:
        raise error

    answer = TestClient(app, raise_server_exceptions=False).get("/boom")
    assert answer.status_code == status and "cannot contain NUL" in answer.json()["detail"]
