"""Service overheads on the real stack: PostgreSQL + Redis + Celery workers + the HTTP API, on loopback.

    python bench/service.py [--candidates 60] [--probe 16] [--rate 200] [--seconds 20] [--json]

Prints
1. per-candidate overhead of queue + store against pure scoring time (one worker):
   (scoring-stage wall time - sum of proxy seconds) / candidates, and that as a share of scoring;
2. scoring throughput (candidates/s) with 1 and with 2 CPU worker processes;
3. status-poll latency p50/p99 of GET /v1/jobs/{id} under a bounded load (--rate req/s for --seconds s);
4. the same job run twice: the second scoring stage reuses the lab-wide score cache (speed-up, same scores);
5. 1 -> 2 workers against the ideal: two independent scoring processes on the same machine.

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


def run_job(stack: Stack, candidates: int, probe: int, seed: int = 0, cache: bool = False) -> dict:
    """One job through the API; `cache=False` (the default here) measures scoring, not the score cache."""
    import httpx

    spec = {"space": "nats-tss", "dataset": "synthetic", "candidates": {"strategy": "random", "n": candidates},
            "proxy": {"name": "mgm", "batch_size": probe, "cache": cache}, "top_k": 1, "final": {"mode": "none"},
            "seed": seed}
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
            "n": len(rows), "scores": sorted((r["arch"], r["score"]) for r in rows)}


IDEAL = """
import sys, time
import scorer
from scorer.seeding import candidate_seed
n, probe, seed = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
space = scorer.get_space("nats-tss")
x, y = scorer.probe_batch("synthetic", probe, 0)
archs = space.sample(seed, n)
scorer.score_arch(space, archs[0], "mgm", x, y, 0, 10)  # warm-up
start = time.perf_counter()
for arch in archs:
    scorer.score_arch(space, arch, "mgm", x, y, candidate_seed(0, arch), 10)
print(time.perf_counter() - start)
"""


def ideal_throughput(processes: int, candidates: int, probe: int) -> float:
    """Candidates/s of `processes` independent scoring loops (no queue, no store): what the machine has."""
    env = {**os.environ, "OMP_NUM_THREADS": str(max(1, (os.cpu_count() or 1) // processes))}
    per = candidates // processes
    procs = [subprocess.Popen([sys.executable, "-c", IDEAL, str(per), str(probe), str(100 + i)], env=env, cwd=REPO,
                              stdout=subprocess.PIPE, text=True) for i in range(processes)]
    seconds = [float(p.communicate()[0].strip().splitlines()[-1]) for p in procs]
    return processes * per / max(seconds)


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
    import json

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--candidates", type=int, default=60)
    parser.add_argument("--probe", type=int, default=16)
    parser.add_argument("--rate", type=int, default=200)
    parser.add_argument("--seconds", type=int, default=20)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    say = (lambda *a, **k: None) if args.json else print
    figures: dict = {"candidates": args.candidates, "probe": args.probe}

    throughput = {}
    for workers in (1, 2):
        stack = Stack(workers)
        try:
            run_job(stack, 10 * workers, args.probe, seed=1)  # warm-up: imports and data in every worker
            r = run_job(stack, args.candidates, args.probe, seed=2)
            throughput[workers] = r["n"] / r["wall"]
            if workers == 1:
                overhead = (r["wall"] - r["proxy_seconds"]) / r["n"]
                scoring = r["proxy_seconds"] / r["n"]
                figures.update(overhead_ms=round(overhead * 1000, 1), scoring_ms=round(scoring * 1000, 1),
                               overhead_share=round(overhead / scoring, 4))
                say(f"1 worker: {r['n']} candidates, scoring stage {r['wall']:.1f} s, proxy time {r['proxy_seconds']:.1f} s")
                say(f"  overhead of queue + store + net build per candidate: {overhead * 1000:.1f} ms "
                    f"= {100 * overhead / scoring:.1f}% of {scoring * 1000:.1f} ms scoring")
                errors: list[str] = []
                latencies = asyncio.run(poll_load(stack.base, r["id"], args.rate, args.seconds, stack.headers,
                                                  errors))
                q = statistics.quantiles(latencies, n=100)
                figures["polls"] = {"rate": args.rate, "answered": len(latencies), "failed": len(errors),
                                    "p50_ms": round(q[49] * 1000, 1), "p99_ms": round(q[98] * 1000, 1)}
                say(f"status polls: {len(latencies)} answered at {args.rate}/s for {args.seconds} s: "
                    f"p50 {q[49] * 1000:.1f} ms, p99 {q[98] * 1000:.1f} ms; failed: {len(errors)}"
                    + (f" ({', '.join(sorted(set(errors)))})" if errors else ""))
                # The lab-wide score cache: the same job twice, the second reusing every score.
                first = run_job(stack, args.candidates, args.probe, seed=3, cache=True)
                again = run_job(stack, args.candidates, args.probe, seed=3, cache=True)
                figures["repeat"] = {"first_s": round(first["wall"], 2), "again_s": round(again["wall"], 3),
                                     "speedup": round(first["wall"] / max(again["wall"], 1e-3), 1),
                                     "identical_scores": first["scores"] == again["scores"]}
                say(f"repeated job (score cache): scoring stage {first['wall']:.2f} s, then {again['wall']:.3f} s "
                    f"(x{figures['repeat']['speedup']}); identical scores: {figures['repeat']['identical_scores']}")
        finally:
            stack.close()
    ideal = {n: ideal_throughput(n, args.candidates, args.probe) for n in (1, 2)}
    figures["throughput"] = {"service_1": round(throughput[1], 2), "service_2": round(throughput[2], 2),
                             "service_ratio": round(throughput[2] / throughput[1], 2),
                             "ideal_1": round(ideal[1], 2), "ideal_2": round(ideal[2], 2),
                             "ideal_ratio": round(ideal[2] / ideal[1], 2),
                             "of_ideal": round((throughput[2] / throughput[1]) / (ideal[2] / ideal[1]), 3)}
    say(f"throughput: 1 worker {throughput[1]:.2f} cand/s, 2 workers {throughput[2]:.2f} cand/s "
        f"(x{throughput[2] / throughput[1]:.2f}); two independent scoring processes: x{ideal[2] / ideal[1]:.2f} "
        f"({ideal[1]:.2f} -> {ideal[2]:.2f} cand/s): the service scales to "
        f"{100 * figures['throughput']['of_ideal']:.0f}% of the machine's ideal (2 cores)")
    if args.json:
        print(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
