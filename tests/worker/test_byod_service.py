"""Bring your own data on the service stack: PostgreSQL + Redis + a Celery worker + the HTTP API.

An admin registers an image folder over HTTP (paths outside KNAS_DATA_DIR refused), a user
searches it, and gets the winner back as a zip that loads without knas; other users get 404s,
and a job without a trained winner gets a 409 that says why. The winner is retrained
(final.retrain_epochs) and the retrained weights are what ships.
"""
from __future__ import annotations

import io
import json
import subprocess
import sys
import zipfile

import httpx
import pytest

from tests.support.image_folders import make_image_folder
from models import Store
from models.users import add_user
from tests.support.servers import LiveServer
from tests.support.waiting import wait_for
from tests.support.workers import DONE, wait_for_rows, worker_env

EXPORTED = {"model.torchscript.pt", "model.onnx", "weights.safetensors", "arch.json", "card.json", "MODEL_CARD.md"}


@pytest.fixture
def api_server(pg_url, redis_url, tmp_path):
    """`knas serve` on the test database and broker (API only), sharing the workers' artifact store."""
    env = {k: v for k, v in worker_env(pg_url, redis_url, tmp_path / "home", KNAS_DATA_DIR=str(tmp_path / "data"),
                                       OMP_NUM_THREADS="1").items() if k != "KNAS_PLUGINS"}
    server = LiveServer(env, tmp_path / "api.log").start()
    yield server.url
    server.stop()


def _wait(client: httpx.Client, job_id: str, timeout: float = 240) -> dict:
    def ended() -> dict | None:
        job = client.get(f"/v1/jobs/{job_id}").json()
        return job if job["status"] in DONE else None

    return wait_for(ended, timeout, f"job {job_id} to end", interval=0.5)


def test_an_image_folder_search_over_http_ships_its_winner(pg_url, api_server, start_worker, tmp_path):
    folder = make_image_folder(tmp_path / "data" / "cells", per_class=6, test_per_class=3)
    outside = make_image_folder(tmp_path / "elsewhere", per_class=2, with_test=False)
    store = Store(pg_url)
    tokens = {name: add_user(store, name, admin=(name == "root")) for name in ("root", "bob", "carol")}
    worker = start_worker("wa", KNAS_DATA_DIR=str(tmp_path / "data"))
    wait_for_rows(store, {"wa"}, procs=[worker])
    as_ = {name: httpx.Client(base_url=api_server, timeout=120, headers={"Authorization": f"Bearer {token}"})
           for name, token in tokens.items()}

    body = {"name": "cells", "path": str(folder)}
    assert as_["bob"].post("/v1/datasets", json=body).status_code == 403  # admins only
    refused = as_["root"].post("/v1/datasets", json={"name": "cells", "path": str(outside)})
    assert refused.status_code == 422 and refused.json()["errors"][0]["loc"] == ["body", "path"]
    assert "KNAS_DATA_DIR" in refused.json()["detail"] or str(tmp_path / "data") in refused.json()["detail"]
    created = as_["root"].post("/v1/datasets", json=body)
    assert created.status_code == 201, created.text
    assert created.json()["num_classes"] == 10 and created.json()["counts"]["train"]["cat"] == 5
    assert as_["root"].post("/v1/datasets", json=body).status_code == 409
    listed = {d["name"]: d for d in as_["bob"].get("/v1/datasets").json()}
    assert listed["cells"]["kind"] == "image-folder" and listed["cells"]["path"] is None  # server paths: admins only

    spec = {"space": "nats-tss", "dataset": "cells", "candidates": {"strategy": "random", "n": 4},
            "proxy": {"name": "params", "batch_size": 8}, "seed": 5, "top_k": 2,
            "final": {"mode": "train", "epochs": 1, "batch_size": 16, "retrain_epochs": 2}}
    job = as_["bob"].post("/v1/jobs", json=spec).json()
    ranked_only = as_["bob"].post("/v1/jobs", json={**spec, "seed": 6, "final": {"mode": "none"}}).json()
    job = _wait(as_["bob"], job["id"])
    assert job["status"] == "succeeded", (job, worker.output()[-4000:])
    assert job["result"]["export"]["status"] == "ready"
    # final.retrain_epochs: the winner was trained again on a worker (a message of its own), and that is what ships.
    retrain = job["result"]["retrain"]
    assert retrain["status"] == "done" and retrain["epochs"] == 2
    assert retrain["candidate_id"] == job["result"]["winner"]["candidate_id"] == job["result"]["export"]["candidate_id"]
    assert _wait(as_["bob"], ranked_only["id"])["status"] == "succeeded"

    # The zip: owner or admin only; 404 for anyone else; 409 (with the reason) without a trained winner.
    assert as_["carol"].get(f"/v1/jobs/{job['id']}/export").status_code == 404
    no_winner = as_["bob"].get(f"/v1/jobs/{ranked_only['id']}/export")
    assert no_winner.status_code == 409 and "final.mode" in no_winner.json()["detail"]
    assert as_["root"].get(f"/v1/jobs/{job['id']}/export").status_code == 200
    answer = as_["bob"].get(f"/v1/jobs/{job['id']}/export")
    assert answer.status_code == 200 and answer.headers["content-type"] == "application/zip"
    bundle = tmp_path / "bundle"
    zipfile.ZipFile(io.BytesIO(answer.content)).extractall(bundle)
    assert {p.name for p in bundle.iterdir()} == EXPORTED
    card = as_["bob"].get(f"/v1/jobs/{job['id']}/card").json()
    assert card == json.loads((bundle / "card.json").read_text())
    assert card["dataset"]["fingerprint"] == created.json()["fingerprint"]
    assert card["training"]["which"].startswith("winner retraining") and len(card["training"]["curve"]) == 2
    assert card["metrics"]["test_acc"] == retrain["test_acc"]
    loaded = subprocess.run([sys.executable, "-I", "-c", "import sys, torch; m = torch.jit.load(sys.argv[1]); "
                             "print(tuple(m(torch.zeros(2, 3, 32, 32)).shape))", str(bundle / "model.torchscript.pt")],
                            cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert loaded.stdout.strip() == "(2, 10)", loaded.stderr

    # Deleting the job takes its artifacts with it.
    job_dir = tmp_path / "home" / "artifacts" / "jobs" / job["id"]
    assert job_dir.is_dir()
    assert as_["carol"].delete(f"/v1/jobs/{job['id']}").status_code == 404
    assert as_["bob"].delete(f"/v1/jobs/{job['id']}").status_code == 204
    assert not job_dir.exists() and as_["bob"].get(f"/v1/jobs/{job['id']}").status_code == 404
    for client in as_.values():
        client.close()
    store.dispose()
