"""`knas serve --workers N` (issue 13): several API processes whose limits and metrics are the service's, not each one's."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from prometheus_client.mmap_dict import MmapedDict
from prometheus_client.parser import text_string_to_metric_families

from tests.support.paths import REPO
from tests.support.servers import LiveServer, clean_env
from tests.support.waiting import wait_for

LIMIT = 6


def start_workers(tmp_path: Path, pg_url: str, redis_url: str, n: int = 2) -> LiveServer:
    env = clean_env(KNAS_HOME=str(tmp_path / "home"), KNAS_DATABASE_URL=pg_url, KNAS_BROKER_URL=redis_url,
                    KNAS_AUTH_FAILURES_PER_MINUTE=str(LIMIT))
    server = LiveServer(env, tmp_path / "serve.log", args=("--workers", str(n), "--log-level", "info")).start()
    # /healthz answers as soon as one process is up; wait for all of them.
    wait_for(lambda: server.log.count("Application startup complete") >= n, timeout=90, what=f"{n} processes")
    return server


def metrics_dir(server: LiveServer) -> Path:
    found = re.search(r"metrics are added up from (\S+)", server.log)
    assert found, server.log
    return Path(found.group(1))


def requests_per_process(directory: Path, route: str | None, status: str | None) -> dict[str, float]:
    """knas_http_requests_total{route, status} as each process counted it (its own file in the directory)."""
    counts: dict[str, float] = {}
    for path in directory.glob("counter_*.db"):
        pid = path.stem.split("_", 1)[1]
        for key, value, *_ in MmapedDict.read_all_values_from_file(str(path)):
            _metric, name, labels, *_rest = json.loads(key)
            if name == "knas_http_requests_total" and route in (None, labels.get("route")) \
                    and status in (None, labels.get("status")):
                counts[pid] = counts.get(pid, 0) + value
    return counts


def counted(directory: Path, status: str, total: int) -> dict[str, float]:
    wait_for(lambda: sum(requests_per_process(directory, "/v1/me", status).values()) >= total, timeout=10,
               what=f"{total} requests counted")
    per_process = requests_per_process(directory, "/v1/me", status)
    assert sum(per_process.values()) == total, per_process
    return per_process


def scraped(server: LiveServer, route: str, status: str) -> float:
    text = httpx.get(f"{server.url}/metrics", timeout=30).text
    return sum(s.value for f in text_string_to_metric_families(text) for s in f.samples
               if s.name == "knas_http_requests_total" and s.labels.get("route") == route
               and s.labels.get("status") == status)


def answered_by(directory: Path, before: dict[str, float]) -> tuple[str, dict[str, float]]:
    """The process whose request count moved since `before` (a request is counted just after its response)."""
    def moved():
        now = requests_per_process(directory, None, None)
        return now if sum(now.values()) > sum(before.values()) else None

    now = wait_for(moved, timeout=10, interval=0.02, what="the request counted")
    return next(pid for pid, n in now.items() if n > before.get(pid, 0)), now


@pytest.mark.live  # `knas serve --workers 2`
def test_two_processes_share_the_failed_login_limit_and_add_up_metrics(tmp_path, pg_url, redis_url):
    server = start_workers(tmp_path, pg_url, redis_url)
    try:
        directory = metrics_dir(server)
        # Each round fails from its own loopback address, one new connection per request; the kernel hands
        # each connection to either process. A round is conclusive when the process that said 429 had
        # itself seen fewer than LIMIT failures: only the shared (Redis) count can have refused it.
        conclusive = False
        for round_ in range(2, 8):
            transport = httpx.HTTPTransport(local_address=f"127.0.0.{round_}")
            answers, by = [], []
            for _ in range(LIMIT + 2):
                before = requests_per_process(directory, None, None)
                with httpx.Client(base_url=server.url, timeout=30, transport=transport) as http:
                    answers.append(http.get("/v1/me", headers={"Authorization": "Bearer knas_wrong"}).status_code)
                by.append(answered_by(directory, before)[0])
            assert answers == [401] * LIMIT + [429] * 2, answers  # the limit holds over both processes
            refused_by = by[LIMIT]
            if by[:LIMIT].count(refused_by) < LIMIT:
                conclusive = True
                break
        assert conclusive, "every round's failures went to a single process"

        token = server.token
        for _ in range(20):
            with httpx.Client(base_url=server.url, timeout=30) as http:
                assert http.get("/v1/me", headers={"Authorization": f"Bearer {token}"}).status_code == 200
        per_process = counted(directory, "2xx", 20)
        failures = counted(directory, "4xx", (LIMIT + 2) * (round_ - 1))
        # Whichever process answers the scrape, it reports every process's requests.
        for _ in range(4):
            assert scraped(server, "/v1/me", "2xx") == 20
            assert scraped(server, "/v1/me", "4xx") == sum(failures.values())
        assert len(per_process) == 2 or len(failures) == 2
    finally:
        server.stop()
    assert not directory.exists()  # the private metrics directory goes with the server


def test_embedded_mode_refuses_more_than_one_process(tmp_path):
    done = subprocess.run([sys.executable, "-m", "knas.cli.main", "serve", "--workers", "2"], cwd=REPO,
                          env=clean_env(KNAS_HOME=str(tmp_path / "home")), capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "--workers needs the service mode" in done.stderr, done.stderr
    helped = subprocess.run([sys.executable, "-m", "knas.cli.main", "serve", "--help"], cwd=REPO,
                            env=clean_env(KNAS_HOME=str(tmp_path / "home")), capture_output=True, text=True, timeout=60)
    assert "--workers" in helped.stdout and "embedded" in helped.stdout
