"""Limits and quotas on the real server (issue 14, finding 1).

Training work, top_k, the final batch size and priorities are bounded by server settings and per-user
quotas (each a 422 naming its field); `proxy.options` a proxy does not accept is a 422; the trainings
view is paginated. (max-jobs under racing POSTs: test_quota_races.py.)
"""
from __future__ import annotations

import uuid

import httpx
import pytest

from models import Store
from tests.support.seed import seed_trained_job
from tests.support.specs import job_spec

QUOTA_ENV = {"KNAS_MAX_TOP_K": "4", "KNAS_MAX_TRAINING_EPOCHS": "10", "KNAS_MAX_BATCH_SIZE": "64",
             "KNAS_MAX_USER_PRIORITY": "5"}


def unique(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:6]}"


def train(epochs: int = 1, **extra) -> dict:
    return {"mode": "train", "epochs": epochs, **extra}


@pytest.fixture
def quota_server(start_server, tmp_path):
    return start_server(KNAS_HOME=str(tmp_path / "home"), **QUOTA_ENV)


@pytest.mark.parametrize("body, where, message", [
    ({"top_k": 5}, ["body", "top_k"], "limit of 4 (KNAS_MAX_TOP_K)"),
    ({"top_k": 4, "final": train(3)}, ["body", "final", "epochs"],
     "trains 12 epochs (top_k 4 x 3 epochs); this server allows at most 10 per job (KNAS_MAX_TRAINING_EPOCHS)"),
    ({"top_k": 3, "final": train(3, retrain_epochs=2)}, ["body", "final", "epochs"],
     "trains 11 epochs (top_k 3 x 3 epochs + 2 retraining epochs)"),
    ({"top_k": 1, "final": train(1, batch_size=65)}, ["body", "final", "batch_size"],
     "batch size 65 is larger than this server's limit of 64 (KNAS_MAX_BATCH_SIZE)"),
    ({"priority": 6}, ["body", "priority"], "priority 6 is for admins only"),
    ({"proxy": {"name": "mgm", "batch_size": 8, "options": {"lr": 10}}}, ["body", "proxy", "options"],
     "proxy 'mgm' has no option 'lr'"),
], ids=["top_k", "training", "retraining", "batch_size", "priority", "proxy_options"])
def test_limits_and_quotas_are_422s_naming_their_field(quota_server, body, where, message):
    token = quota_server.add_user(unique("kim"))
    with httpx.Client(base_url=quota_server.url, timeout=30, headers={"Authorization": f"Bearer {token}"}) as http:
        response = http.post("/v1/jobs", json={**job_spec(n=8), **body})
        assert response.status_code == 422, response.text
        problem = response.json()
        assert message in problem["detail"] and problem["errors"][0]["loc"] == where, problem
        assert http.get("/v1/jobs").json()["count"] == 0  # nothing was created


def test_the_limits_let_through_what_fits_and_priorities_are_for_admins(quota_server):
    user = quota_server.add_user(unique("lee"))
    with httpx.Client(base_url=quota_server.url, timeout=30) as http:
        ok = http.post("/v1/jobs", headers={"Authorization": f"Bearer {user}"},
                       json={**job_spec(n=8), "top_k": 4, "priority": 5, "final": {"mode": "none"}})
        assert ok.status_code == 202, ok.text
        http.post(f"/v1/jobs/{ok.json()['id']}/cancel", headers={"Authorization": f"Bearer {user}"})
        urgent = http.post("/v1/jobs", headers=quota_server.auth, json={**job_spec(n=2, seed=3), "priority": 9})
        assert urgent.status_code == 202, urgent.text  # the embedded server's local user is an admin
        http.post(f"/v1/jobs/{urgent.json()['id']}/cancel", headers=quota_server.auth)


def test_a_users_training_quota_is_below_the_servers(quota_server):
    token = quota_server.add_user(unique("max"), max_training_epochs=3)
    with httpx.Client(base_url=quota_server.url, timeout=30, headers={"Authorization": f"Bearer {token}"}) as http:
        response = http.post("/v1/jobs", json={**job_spec(n=8), "top_k": 2, "final": train(2)})
        assert response.status_code == 422, response.text
        assert response.json()["errors"][0]["loc"] == ["body", "final", "epochs"]
        assert "your quota allows at most 3 per job (max-training-epochs of user" in response.json()["detail"]


def test_the_trainings_view_is_paginated(embedded_server, embedded_home):
    name = unique("nia")
    token = embedded_server.add_user(name)
    store = Store(f"sqlite:///{embedded_home / 'knas.db'}")
    try:
        job_id, made = seed_trained_job(store, name, [50.0 + (i % 40) for i in range(150)])
    finally:
        store.dispose()
    with httpx.Client(base_url=embedded_server.url, timeout=30, headers={"Authorization": f"Bearer {token}"}) as http:
        first = http.get(f"/v1/jobs/{job_id}/trainings")
        assert first.status_code == 200 and first.headers["x-total-count"] == "150"
        assert len(first.json()["data"]) == 100 and set(first.json()) >= {"data", "n", "kendall"}
        rest = http.get(f"/v1/jobs/{job_id}/trainings", params={"limit": 100, "offset": 100}).json()["data"]
        assert len(rest) == 50
        ranks = [t["rank"] for t in first.json()["data"] + rest]
        assert ranks == list(range(1, 151))
        assert http.get(f"/v1/jobs/{job_id}/trainings", params={"limit": 1001}).status_code == 422
