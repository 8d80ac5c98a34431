"""`knas worker`: start Celery workers, one per GPU (pinned) or one for the CPUs."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from dataclasses import dataclass

import click

from knas.settings import get_settings


@dataclass(frozen=True)
class WorkerProcess:
    name: str  # Celery node name, also the `workers` row
    argv: list[str]
    env: dict[str, str]


def plan_workers(gpus: str | None, device: str, concurrency: int, queues: str, name: str | None,
                 host: str | None = None, cores: int | None = None) -> list[WorkerProcess]:
    """The worker processes to start: pure, so it is tested without GPUs."""
    host = host or socket.gethostname()
    cores = cores or os.cpu_count() or 1
    base = [sys.executable, "-m", "celery", "-A", "worker.celery_app", "worker", "-Q", queues,
            "--prefetch-multiplier", "1", "-l", "INFO", "--without-gossip", "--without-mingle"]
    if gpus:
        ids = [g.strip() for g in gpus.split(",") if g.strip()]
        if not ids or not all(g.isdigit() for g in ids):
            raise click.BadParameter(f"--gpus takes GPU indices like 0,1,2, got {gpus!r}")
        plans = []
        for gpu in ids:
            prefix = f"{name or 'gpu'}{gpu}"
            env = {"CUDA_VISIBLE_DEVICES": gpu, "KNAS_DEVICE": "cuda", "KNAS_WORKER_NAME": prefix,
                   "OMP_NUM_THREADS": str(max(1, cores // len(ids)))}
            plans.append(WorkerProcess(f"{prefix}@{host}", [*base, "-n", f"{prefix}@{host}", "-P", "solo"], env))
        return plans
    prefix = name or device.replace(":", "")
    threads = max(1, cores // concurrency)
    pool = ["-P", "solo"] if concurrency == 1 else ["-P", "prefork", "-c", str(concurrency)]
    env = {"KNAS_DEVICE": device, "KNAS_WORKER_NAME": prefix, "OMP_NUM_THREADS": str(threads)}
    if device == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = ""
    return [WorkerProcess(f"{prefix}@{host}", [*base, "-n", f"{prefix}@{host}", *pool], env)]


@click.command()
@click.option("--gpus", default=None, help="comma-separated GPU indices: one worker process per GPU")
@click.option("--device", default="cpu", show_default=True, help="device when --gpus is not given")
@click.option("--concurrency", type=click.IntRange(1, 256), default=1, show_default=True,
              help="worker processes for --device cpu")
@click.option("--queues", default="score,train", show_default=True)
@click.option("--name", default=None, help="node name prefix (default: gpuN / cpu)")
def worker(gpus: str | None, device: str, concurrency: int, queues: str, name: str | None) -> None:
    """Start Celery workers that score and train candidates of queued jobs."""
    settings = get_settings()
    if not settings.broker_url or not settings.database_url:
        raise click.ClickException(
            "knas worker needs KNAS_BROKER_URL and KNAS_DATABASE_URL (a shared broker and store); "
            "without them `knas search` and `knas serve` run jobs in-process")
    plans = plan_workers(gpus, device, concurrency, queues, name)
    children = []
    for plan in plans:
        click.echo(f"starting {plan.name}: queues {queues}, "
                   + ", ".join(f"{k}={v}" for k, v in plan.env.items() if k != "OMP_NUM_THREADS"))
        children.append(subprocess.Popen(plan.argv, env={**os.environ, **plan.env}))

    def forward(signum, _frame) -> None:
        for child in children:
            if child.poll() is None:
                child.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    codes = [child.wait() for child in children]
    raise SystemExit(max(codes, default=0))
