"""`knas worker`: start Celery workers, one process per GPU (pinned) or one for the CPUs.

Each worker is `celery -A worker.celery_app worker` with the prefork pool, so a pool child that
dies mid-task (OOM kill, segfault) has its message re-queued at once (reject_on_worker_lost):

- `--gpus 0,1`: one worker per GPU, `CUDA_VISIBLE_DEVICES=<gpu>`, `KNAS_DEVICE=cuda`,
  concurrency 1, node name `gpu<N>@<host>` (so the `workers` table says which GPU it is);
- `--gpus auto`: the GPUs this process was given (CUDA_VISIBLE_DEVICES, as Slurm and most
  schedulers set it; else SLURM_STEP_GPUS / SLURM_JOB_GPUS) - what deploy/slurm uses;
- `--device cpu --concurrency N`: one worker `cpu@<host>` with N processes and
  OMP_NUM_THREADS = cores // N, so N x threads <= cores.

The children die with this command, also when it is SIGKILLed (OOM killer, `kill -9`, a process
manager's timeout) and so cannot forward anything: each child asks Linux for SIGTERM when its parent
dies (prctl PR_SET_PDEATHSIG); where that does not exist, a watcher process per child waits on a
pipe only this command holds open and SIGTERMs the child's process group when it closes. Celery's
main process stops its own pool children when it gets SIGTERM.

This command supervises its children: SIGTERM/SIGINT are forwarded (Celery's warm shutdown: the
running task finishes; a second SIGINT is a cold shutdown), and it exits when they have exited.
If one child dies on its own, the others are stopped too and the exit status is non-zero, so a
supervisor (systemd, docker `restart:`) restarts the set.
"""
from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Mapping

import click

from knas.settings import get_settings

from .common import ready_schema

QUEUES = ("score", "train")


@dataclass(frozen=True)
class WorkerProcess:
    name: str  # the Celery node name; also the worker's row in the `workers` table
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)  # set on top of this process's environment

    def describe(self) -> str:
        env = " ".join(f"{k}={v!r}" if v == "" else f"{k}={v}" for k, v in self.env.items())
        return f"{self.name}: {env} {' '.join(self.argv[1:])}"


GPU_ID = re.compile(r"^(\d+|(GPU|MIG)-[0-9A-Za-z/-]+)$")  # an index, or a UUID as CUDA_VISIBLE_DEVICES allows
GPU_ENV = ("CUDA_VISIBLE_DEVICES", "SLURM_STEP_GPUS", "SLURM_JOB_GPUS")


def gpus_from_env(env: Mapping[str, str] | None = None) -> str:
    """`--gpus auto`: the GPUs a scheduler gave this process, from the first variable that names any."""
    env = os.environ if env is None else env
    for var in GPU_ENV:
        value = env.get(var, "").strip()
        if value and value not in ("NoDevFiles", "-1"):
            return value
    raise click.BadParameter(f"'auto' found no GPUs: none of {', '.join(GPU_ENV)} is set "
                             "(run inside a GPU allocation, or pass --gpus 0,1,...)", param_hint="--gpus")


def parse_gpus(gpus: str) -> list[str]:
    if gpus.strip() == "auto":
        gpus = gpus_from_env()
    ids = [g.strip() for g in gpus.split(",") if g.strip()]
    if not ids or not all(GPU_ID.match(g) for g in ids) or len(set(ids)) != len(ids):
        raise click.BadParameter(f"takes distinct GPU indices like 0,1,2 (or 'auto'), got {gpus!r}",
                                 param_hint="--gpus")
    return ids


def parse_queues(queues: str) -> str:
    names = [q.strip() for q in queues.split(",") if q.strip()]
    unknown = sorted(set(names) - set(QUEUES))
    if not names or unknown:
        raise click.BadParameter(f"queues are {', '.join(QUEUES)}; got {queues!r}", param_hint="--queues")
    return ",".join(names)


def plan_workers(gpus: str | None = None, device: str = "cpu", concurrency: int = 1, queues: str = "score,train",
                 name: str | None = None, host: str | None = None, cores: int | None = None,
                 loglevel: str = "INFO", python: str | None = None, threads: int | None = None) -> list[WorkerProcess]:
    """The worker processes to start (pure: tested without GPUs or a broker).

    `threads` (torch/OpenMP threads per process) defaults to cores // processes.
    """
    host = host or socket.gethostname()
    cores = cores or os.cpu_count() or 1
    queues = parse_queues(queues)
    base = [python or sys.executable, "-m", "celery", "-A", "worker.celery_app", "worker", "--pool", "prefork",
            "--queues", queues, "--loglevel", loglevel, "--without-gossip", "--without-mingle"]
    if gpus:
        ids = parse_gpus(gpus)
        per_gpu = str(threads or max(1, cores // len(ids)))  # CPU-side work (data, augmentation) per GPU
        plans = []
        for position, gpu in enumerate(ids):
            label = gpu if gpu.isdigit() else str(position)  # UUIDs make poor node names
            node = f"{name}-gpu{label}@{host}" if name else f"gpu{label}@{host}"
            env = {"CUDA_VISIBLE_DEVICES": gpu, "KNAS_DEVICE": "cuda", "OMP_NUM_THREADS": per_gpu,
                   "MKL_NUM_THREADS": per_gpu}
            plans.append(WorkerProcess(node, [*base, "--hostname", node, "--concurrency", "1"], env))
        return plans
    if concurrency < 1:
        raise click.BadParameter("must be at least 1", param_hint="--concurrency")
    per_process = str(threads or max(1, cores // concurrency))
    node = name if name and "@" in name else f"{name or device.replace(':', '')}@{host}"
    env = {"KNAS_DEVICE": device, "OMP_NUM_THREADS": per_process, "MKL_NUM_THREADS": per_process}
    if device == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = ""  # a CPU worker never touches a GPU
    return [WorkerProcess(node, [*base, "--hostname", node, "--concurrency", str(concurrency)], env)]


PR_SET_PDEATHSIG = 1


def _set_pdeathsig(signum: int = signal.SIGTERM) -> bool:
    """Linux: `signum` to this process when its parent dies. False where prctl is unavailable."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_PDEATHSIG, int(signum), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False


def die_with_parent(parent: int, watch_fd: int | None = None, use_prctl: bool = True):
    """A `preexec_fn` (runs in the child between fork and exec) that ties the child's life to `parent`.

    With prctl: PR_SET_PDEATHSIG, then a check that the parent did not die before it took effect.
    Without: a watcher forked from the child blocks on `watch_fd` (the read end of a pipe whose write
    end only the parent holds) and SIGTERMs the child's process group (its own session) at EOF.
    """
    def preexec() -> None:
        if use_prctl and _set_pdeathsig(signal.SIGTERM):
            if os.getppid() != parent:  # the parent died before prctl: the signal will never come
                os.kill(os.getpid(), signal.SIGTERM)
            return
        if watch_fd is None:
            return
        group = os.getpid()  # start_new_session: the child leads its own process group
        middle = os.fork()
        if middle == 0:  # a double fork: the watcher is nobody's child but init's, not Celery's
            try:
                if os.fork() == 0:
                    os.closerange(0, watch_fd)  # above all subprocess' error pipe, or Popen() would wait on us
                    os.closerange(watch_fd + 1, 65536)
                    while os.read(watch_fd, 1):
                        pass
                    os.killpg(group, signal.SIGTERM)
            finally:
                os._exit(0)
        os.waitpid(middle, 0)
        os.close(watch_fd)  # the child (Celery) need not hold it

    return preexec


def start_child(argv: list[str], env: dict[str, str], use_prctl: bool = True) -> subprocess.Popen:
    """Start one worker process in its own session, bound to die with this process."""
    read_fd: int | None = None
    write_fd: int | None = None
    if not (use_prctl and sys.platform.startswith("linux")):
        read_fd, write_fd = os.pipe()
        os.set_inheritable(read_fd, True)
    try:
        # Own session: a Ctrl-C in the terminal reaches the children once, through us.
        return subprocess.Popen(argv, env=env, start_new_session=True,
                                pass_fds=() if read_fd is None else (read_fd,),
                                preexec_fn=die_with_parent(os.getpid(), read_fd, use_prctl))
    finally:
        if read_fd is not None and write_fd is not None:
            os.close(read_fd)  # the write end stays open in this process until it exits (by any means)
            _WATCH_PIPES.append(write_fd)


_WATCH_PIPES: list[int] = []


def missing_settings(settings) -> list[str]:
    return [var for var, value in (("KNAS_BROKER_URL", settings.broker_url),
                                   ("KNAS_DATABASE_URL", settings.database_url)) if not value]


@click.command()
@click.option("--gpus", default=None, metavar="0,1,...|auto",
              help="one worker process per GPU, pinned to it ('auto': the GPUs the scheduler gave us)")
@click.option("--device", default="cpu", show_default=True, help="device of the worker when --gpus is not given")
@click.option("--concurrency", type=click.IntRange(1, 512), default=1, show_default=True,
              help="processes of the --device worker (torch threads = cores // concurrency)")
@click.option("--queues", default="score,train", show_default=True, help="queues to consume")
@click.option("--name", default=None, help="node name prefix (default: gpu<N> / cpu), '@<host>' is added")
@click.option("--threads", type=click.IntRange(1, 512), default=None,
              help="torch threads per worker process [default: cores // processes]")
@click.option("--loglevel", default="INFO", show_default=True)
@click.option("--dry-run", is_flag=True, help="print the worker processes it would start, and exit")
def worker(gpus: str | None, device: str, concurrency: int, queues: str, name: str | None, threads: int | None,
           loglevel: str, dry_run: bool) -> None:
    """Start Celery workers that score and train the candidates of submitted jobs."""
    missing = missing_settings(get_settings())
    if missing:
        raise click.ClickException(
            f"knas worker needs {' and '.join(missing)} (a shared broker and store); without them "
            "`knas search` and `knas serve` run jobs in-process and need no worker")
    plans = plan_workers(gpus, device, concurrency, queues, name, loglevel=loglevel, threads=threads)
    if dry_run:
        for plan in plans:
            click.echo(f"would start {plan.describe()}")
        return
    ready_schema()  # each Celery node checks again on `worker_init` (nodes started without this command)
    children: list[tuple[WorkerProcess, subprocess.Popen]] = []
    stopping = {"signal": None}

    def forward(signum, _frame) -> None:
        stopping["signal"] = signum
        for _, child in children:
            if child.poll() is None:
                child.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    for plan in plans:
        child = start_child(plan.argv, {**os.environ, **plan.env})
        children.append((plan, child))
        click.echo(f"started {plan.name} (pid {child.pid}): {plan.describe()}", err=False)
    sys.stdout.flush()
    exit_code = _supervise(children, stopping)
    raise SystemExit(exit_code)


def _supervise(children: list[tuple[WorkerProcess, subprocess.Popen]], stopping: dict) -> int:
    """Wait for the children; if one exits while nobody asked, stop the rest. Returns the exit status."""
    codes: dict[str, int] = {}
    unexpected = False
    while len(codes) < len(children):
        for plan, child in children:
            if plan.name in codes or child.poll() is None:
                continue
            code = child.returncode if child.returncode >= 0 else 128 - child.returncode  # killed by a signal
            codes[plan.name] = code
            click.echo(f"{plan.name} exited with status {code}")
            if stopping["signal"] is None:  # died on its own: take the others down, let the supervisor restart us
                unexpected = True
                stopping["signal"] = signal.SIGTERM
                for _, other in children:
                    if other.poll() is None:
                        other.send_signal(signal.SIGTERM)
        time.sleep(0.2)
    bad = [code for code in codes.values() if code != 0]
    return bad[0] if bad else (1 if unexpected else 0)
