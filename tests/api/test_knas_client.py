"""`knas submit / status / results` (knas/cli/client.py over knas/client.py) against a server over HTTP."""
from __future__ import annotations

import csv
import io
import subprocess
import sys
import time
import uuid

import pytest

from tests.support.servers import clean_env
from tests.support.specs import job_spec
from tests.support.waiting import wait_for


@pytest.fixture
def knas(tmp_path, embedded_server):
    """Run the `knas` command as a user would, pointed at the live server through KNAS_SERVER."""
    env = clean_env(KNAS_HOME=str(tmp_path / "client-home"), KNAS_SERVER=embedded_server.url,
                     KNAS_TOKEN=embedded_server.token)

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "knas.cli.main", *args], env=env, capture_output=True,
                              text=True, timeout=180)

    return run


@pytest.mark.slow  # a search, followed to the end
def test_submit_watch_then_status_and_results(knas, embedded_server):
    submitted = knas("submit", "--dataset", "digits", "--candidates", "3", "--probe", "8", "--top-k", "1",
                     "--final", "none", "--seed", "9", "--watch")
    assert submitted.returncode == 0, submitted.stdout + submitted.stderr
    job_id = submitted.stdout.splitlines()[0]
    uuid.UUID(job_id)
    assert "succeeded" in submitted.stdout and "winner" in submitted.stdout

    exported = knas("results", job_id, "--format", "csv", "--server", embedded_server.url)
    assert exported.returncode == 0, exported.stderr
    rows = list(csv.DictReader(io.StringIO(exported.stdout)))
    assert [int(r["rank"]) for r in rows] == [1, 2, 3]
    scores = [float(r["score"]) for r in rows]  # the default proxy (ensemble) scores are log-rank sums <= 0
    assert all(r["status"] == "scored" for r in rows) and scores == sorted(scores, reverse=True)

    table = knas("results", job_id, "--limit", "2")
    assert table.returncode == 0 and "winner" in table.stdout and "first 2 of 3" in table.stdout
    shown = knas("status", job_id)
    assert shown.returncode == 0 and "succeeded" in shown.stdout and "3/3 scored" in shown.stdout


def test_watching_a_job_that_did_not_succeed_exits_non_zero(knas, api):
    job_id = api.submit(job_spec(n=50, seed=21))["id"]  # big enough that cancel arrives first
    api.cancel(job_id)
    watched = knas("status", job_id, "--watch")
    assert watched.returncode == 1 and "cancelled" in watched.stdout


@pytest.mark.parametrize("args, message", [
    (["status", str(uuid.uuid4())], "404 no job"),
    (["results", "not-an-id", "--format", "csv"], "job ids are UUIDs"),
    (["submit", "--dataset", "cifar10", "--candidates", "3", "--top-k", "1", "--final", "none"],
     "'cifar10' is not present on this server"),
    (["submit", "--candidates", "3", "--top-k", "5"], "top_k=5 is larger than the 3 candidates"),
], ids=["unknown-job", "bad-id", "server-refuses", "local-check"])
def test_errors_are_one_clear_line(knas, args, message):
    result = knas(*args)
    assert result.returncode != 0
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stdout + result.stderr


def test_closed_port_is_one_clear_line(knas, closed_port):
    result = knas("status", str(uuid.uuid4()), "--server", f"http://127.0.0.1:{closed_port}")
    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == [
        f"Error: cannot reach the knas server at http://127.0.0.1:{closed_port} (Connection refused); "
        "start one with `knas serve` or pass --server / set KNAS_SERVER"]


def test_wait_rides_out_a_server_restart(start_live_server, tmp_path):
    """`knas status --watch` through a killed and restarted server: the wait goes on, the job finishes."""
    import threading

    server = start_live_server(KNAS_HOME=str(tmp_path / "home"))
    with server.client() as submitter:
        job = submitter.submit(job_spec(n=60, probe=8, seed=77, proxy={"name": "mgm", "batch_size": 8}))
        wait_for(lambda: submitter.job(job["id"])["progress"]["scored"] >= 1, 120, what="scoring to start")
    outcome: dict = {}

    def watch() -> None:
        with server.client() as watcher:
            try:
                outcome["job"] = watcher.wait(job["id"], timeout=240, interval=0.2)
            except Exception as error:  # noqa: BLE001 - reported by the assertion below
                outcome["error"] = error

    thread = threading.Thread(target=watch)
    thread.start()
    server.kill()
    time.sleep(1.5)  # the watcher meets a closed port at least once
    server.start()
    thread.join(260)
    assert "error" not in outcome, outcome.get("error")
    assert outcome["job"]["status"] == "succeeded" and outcome["job"]["progress"]["scored"] == 60
