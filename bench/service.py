"""Service overheads on the real stack: PostgreSQL + Redis + Celery workers + the HTTP API, on loopback.

    python bench/service.py [--candidates 60] [--probe 16] [--rate 200] [--seconds 20]

Prints
1. per-candidate overhead of queue + store against pure scoring time (one worker):
   (scoring-stage wall time - sum of proxy seconds) / candidates, and that as a share of scoring;
2. scoring throughput (candidates/s) with 1 and with 2 CPU worker processes;
3. status-poll latency p50/p99 of GET /v1/jobs/{id} under a bounded load (--rate req/s for --seconds s).

Needs PostgreSQL and Redis on 127.0.0.1 (as the tests do). Creates and drops its own database.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import time
import uuid
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
PG_ADMIN = os.environ.get("KNAS_TEST_PG_ADMIN", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
REDIS = os.environ.get("KNAS_BENCH_REDIS", "redis://127.0.0.1:6379/14")


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Stack:
    """A private database, a flushed Redis db, the API and N workers as subprocesses."""

    def __init__(self, workers: int) -> None:
        from sqlalchemy import create_engine, text
        from sqlalchemy.engine import make_url

        import redis

        self.db = f"knas_bench_{uuid.uuid4().hex[:8]}"
        self.admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
        with self.admin.connect() as c:
            c.execute(text(f'CREATE DATABASE "{self.db}"'))
        redis.Redis.from_url(REDIS).flushdb()
        self.url = make_url(PG_ADMIN).set(database=self.db).render_as_string(hide_password=False)
        self.port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("KNAS_")}
        env.update(KNAS_DATABASE_URL=self.url, KNAS_BROKER_URL=REDIS, KNAS_CHUNK_SIZE="5", KNAS_DEVICE="cpu",
                   OMP_NUM_THREADS="1" if workers > 1 else "2")
        from models import Store
        from models.users import add_user

        store = Store(self.url)
        self.headers = {"Authorization": f"Bearer {add_user(store, 'bench', admin=True)}"}
        store.dispose()
        knas = [sys.executable, "-m", "knas.cli.main"]
        self.procs = [subprocess.Popen([*knas, "serve", "--port", str(self.port)], env=env,
                                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
        threads = str(max(1, (os.cpu_count() or 1) // workers))  # never more torch threads than cores
        self.procs += [subprocess.Popen([*knas, "worker", "--device", "cpu", "--name", f"bench{i}",
                                         "--threads", threads], env=env,
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                       for i in range(workers)]
        self.base = f"http://127.0.0.1:{self.port}"
        self._wait_ready()

    def _wait_ready(self) -> None:
        import httpx

        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                if httpx.get(f"{self.base}/healthz", timeout=2).status_code == 200:
                    time.sleep(3)  # give workers time to connect
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise RuntimeError("API did not come up")

    def close(self) -> None:
        from sqlalchemy import text

        for p in self.procs:
            p.terminate()
        for p in self.procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
        with self.admin.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{self.db}" WITH (FORCE)'))


def run_job(stack: Stack, candidates: int, probe: int) -> dict:
    import httpx

    spec = {"space": "nats-tss", "dataset": "synthetic", "candidates": {"strategy": "random", "n": candidates},
            "proxy": {"name": "mgm", "batch_size": probe}, "top_k": 1, "final": {"mode": "none"}}
    job = httpx.post(f"{stack.base}/v1/jobs", json=spec, headers=stack.headers, timeout=30).raise_for_status().json()
    while True:
        job = httpx.get(f"{stack.base}/v1/jobs/{job['id']}", headers=stack.headers, timeout=30).json()
        if job["status"] in ("succeeded", "failed", "cancelled"):
            break
        time.sleep(0.5)
    if job["status"] != "succeeded":
        raise RuntimeError(f"job ended {job['status']}: {job.get('error')}")
    rows = httpx.get(f"{stack.base}/v1/jobs/{job['id']}/candidates", params={"limit": candidates},
                     headers=stack.headers, timeout=30).json()
    rows = rows.get("data", rows)
    scoring = job["timings"]["scoring"]
    wall = (datetime.fromisoformat(scoring["finished"]) - datetime.fromisoformat(scoring["started"])).total_seconds()
    return {"id": job["id"], "wall": wall, "proxy_seconds": sum(r["proxy_seconds"] or 0 for r in rows),
            "n": len(rows)}


async def poll_load(base: str, job_id: str, rate: int, seconds: int, headers: dict[str, str],
                    errors: list[str]) -> list[float]:
    """Latencies of the polls that succeeded; each failed poll (dropped connection, 5xx) goes to `errors`."""
    import httpx

    latencies: list[float] = []
    async with httpx.AsyncClient(base_url=base, timeout=10, headers=headers,
                                 limits=httpx.Limits(max_connections=64)) as client:
        async def one():
            start = time.perf_counter()
            try:
                r = await client.get(f"/v1/jobs/{job_id}")
                r.raise_for_status()
            except httpx.HTTPError as error:
                errors.append(type(error).__name__)
                return
            latencies.append(time.perf_counter() - start)

        tasks = []
        begin = time.perf_counter()
        for i in range(rate * seconds):
            await asyncio.sleep(max(0.0, begin + i / rate - time.perf_counter()))
            tasks.append(asyncio.create_task(one()))
        await asyncio.gather(*tasks)
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--candidates", type=int, default=60)
    parser.add_argument("--probe", type=int, default=16)
    parser.add_argument("--rate", type=int, default=200)
    parser.add_argument("--seconds", type=int, default=20)
    args = parser.parse_args()

    throughput = {}
    for workers in (1, 2):
        stack = Stack(workers)
        try:
            run_job(stack, 10 * workers, args.probe)  # warm-up: imports and data in every worker
            r = run_job(stack, args.candidates, args.probe)
            throughput[workers] = r["n"] / r["wall"]
            if workers == 1:
                overhead = (r["wall"] - r["proxy_seconds"]) / r["n"]
                scoring = r["proxy_seconds"] / r["n"]
                print(f"1 worker: {r['n']} candidates, scoring stage {r['wall']:.1f} s, proxy time {r['proxy_seconds']:.1f} s")
                print(f"  overhead of queue + store + net build per candidate: {overhead * 1000:.1f} ms "
                      f"= {100 * overhead / scoring:.1f}% of {scoring * 1000:.1f} ms scoring")
                errors: list[str] = []
                latencies = asyncio.run(poll_load(stack.base, r["id"], args.rate, args.seconds, stack.headers,
                                                  errors))
                q = statistics.quantiles(latencies, n=100)
                print(f"status polls: {len(latencies)} answered at {args.rate}/s for {args.seconds} s: "
                      f"p50 {q[49] * 1000:.1f} ms, p99 {q[98] * 1000:.1f} ms; failed: {len(errors)}"
                      + (f" ({', '.join(sorted(set(errors)))})" if errors else ""))
        finally:
            stack.close()
    print(f"throughput: 1 worker {throughput[1]:.2f} cand/s, 2 workers {throughput[2]:.2f} cand/s "
          f"(x{throughput[2] / throughput[1]:.2f}; 2 cores)")


if __name__ == "__main__":
    main()
