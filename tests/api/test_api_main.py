"""The app as a whole: no torch in the API process, and a killed embedded server loses no job."""
from __future__ import annotations

import json
import subprocess
import sys
import warnings

from api.main import create_app
from knas.settings import Settings
from models import Job, Store
from models.queries import progress
from tests.support.servers import clean_env
from tests.support.specs import job_spec
from tests.support.waiting import wait_for

with warnings.catch_warnings():  # starlette's TestClient warns about its httpx dependency; nothing to act on here
    warnings.filterwarnings("ignore", message=".*starlette.testclient.*")
    from fastapi.testclient import TestClient

NO_TORCH_SCRIPT = r"""
import json, sys, warnings
warnings.simplefilter("ignore")
from fastapi.testclient import TestClient
from api.main import create_app
from knas.settings import get_settings
from models import Store
from models.users import add_user

spec = json.loads(sys.argv[1])
token = add_user(Store(get_settings().effective_database_url), "alice")
with TestClient(create_app(), headers={"Authorization": f"Bearer {token}"}) as client:
    submitted = client.post("/v1/jobs", json=spec)
    import redis  # right away: other tests share (and flush) the test Redis database
    queued = [k.decode() for k in redis.Redis.from_url(sys.argv[2]).keys("score*")]
    refused = client.post("/v1/jobs", json={**spec, "dataset": "cifar10", "final": {"mode": "benchmark"}})
    answers = {
        "queue": type(client.app.state.queue).__name__,
        "submit": submitted.status_code,
        "broker_keys": queued,
        "job": client.get(submitted.headers["location"]).json()["status"],
        "refused": [refused.status_code, refused.json()["detail"]],
        "health": client.get("/healthz").json(),
        "catalog": [client.get(p).status_code for p in ("/v1/spaces", "/v1/proxies", "/v1/datasets")],
    }
# scorer.proxies and scorer.data are the torch-free registries the catalog routes list; their
# implementations (and torch) must stay unloaded
heavy = ("torch", "scorer.proxies.base", "scorer.proxies.mgm", "scorer.data.loading", "scorer.train", "worker.pipeline")
answers["loaded"] = [name for name in heavy if name in sys.modules]
print(json.dumps(answers))
"""


def test_api_process_with_a_broker_never_imports_torch(tmp_path, redis_url):
    env = clean_env(KNAS_HOME=str(tmp_path), KNAS_DATABASE_URL=f"sqlite:///{tmp_path / 'knas.db'}",
                     KNAS_BROKER_URL=redis_url)
    result = subprocess.run([sys.executable, "-c", NO_TORCH_SCRIPT, json.dumps(job_spec()), redis_url], env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    answers = json.loads(result.stdout.strip().splitlines()[-1])
    assert answers["queue"] == "CeleryQueue" and answers["submit"] == 202 and answers["job"] == "queued"
    assert answers["refused"][0] == 422 and "KNAS_BENCHMARK_DIR" in answers["refused"][1]
    assert answers["health"] == {"status": "ok", "database": "ok", "broker": "ok"}
    assert answers["catalog"] == [200, 200, 200]
    assert answers["broker_keys"], "the job should be on the broker's score queue, for a worker to pick up"
    assert answers["loaded"] == [], f"the API process imported {answers['loaded']}"


def test_killed_embedded_server_finishes_its_job_after_restart(start_live_server, tmp_path):
    home = tmp_path / "home"
    first = start_live_server(KNAS_HOME=str(home))
    assert "embedded mode" in first.log
    with first.client() as client:
        job_id = client.submit(job_spec(n=20, probe=32, seed=5))["id"]
        wait_for(lambda: client.job(job_id)["progress"]["scored"] >= 1, timeout=90, what="scoring to start")
    first.kill()

    store = Store(f"sqlite:///{home / 'knas.db'}")
    with store.session() as session:
        status, left = session.get(Job, job_id).status, progress(session, job_id)["pending"]
    store.dispose()
    assert status == "scoring" and left > 0, "the job must still be mid-scoring when the server dies"

    second = start_live_server(KNAS_HOME=str(home))
    with second.client() as client:
        job = client.wait(job_id, timeout=120, interval=0.3)
        assert job["status"] == "succeeded", job
        assert job["progress"]["scored"] == 20 and job["progress"]["pending"] == 0
        assert [c["rank"] for c in client.candidates(job_id)["data"]] == list(range(1, 21))


class BrokerDown:
    def submit(self, job_id: str, priority: int = 0) -> None:
        raise ConnectionRefusedError("[Errno 111] Connection refused")

    def close(self) -> None:
        return None


def test_a_queue_that_cannot_take_the_job_is_a_503_and_the_job_says_why(tmp_path):
    with TestClient(create_app(Settings(home=tmp_path), queue=BrokerDown())) as client:
        client.headers["Authorization"] = f"Bearer {(tmp_path / 'token').read_text().strip()}"
        response = client.post("/v1/jobs", json=job_spec())
        assert response.status_code == 503 and "job queue is unavailable" in response.json()["detail"]
        jobs = client.get("/v1/jobs").json()["data"]
    assert [j["status"] for j in jobs] == ["failed"] and "could not enqueue" in jobs[0]["error"]
