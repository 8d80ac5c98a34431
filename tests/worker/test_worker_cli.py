"""`knas worker`: refuses to run without a shared store and broker; builds one Celery worker per GPU.

No GPU is needed (or used) here: the per-GPU commands and environments are checked by calling the
command-building function `plan_workers` directly; the live tests run real CPU workers.
"""
from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from knas.cli.main import cli
from knas.cli.worker_cmd import WorkerProcess, _supervise, plan_workers
from knas.settings import get_settings
from models import Store
from tests.support.processes import descendants, process_alive
from tests.support.waiting import wait_for
from tests.support.workers import wait_for_rows


@pytest.fixture
def settings_env(monkeypatch):
    def set_env(**values):
        for var in ("KNAS_BROKER_URL", "KNAS_DATABASE_URL"):
            monkeypatch.delenv(var, raising=False)
        for var, value in values.items():
            monkeypatch.setenv(var, value)
        get_settings.cache_clear()

    yield set_env
    get_settings.cache_clear()


def test_refuses_to_start_without_broker_and_database(settings_env):
    settings_env()
    result = CliRunner().invoke(cli, ["worker", "--device", "cpu"])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "KNAS_BROKER_URL and KNAS_DATABASE_URL" in lines[0] and "in-process" in lines[0]
    settings_env(KNAS_DATABASE_URL="postgresql+psycopg://db/knas")
    result = CliRunner().invoke(cli, ["worker", "--gpus", "0"])
    assert result.exit_code == 1 and "needs KNAS_BROKER_URL (" in result.output


def test_one_pinned_worker_per_gpu():
    """Command building only: this machine has no GPU, so nothing is started."""
    plans = plan_workers(gpus="0,2", host="node7", cores=16)
    assert [p.name for p in plans] == ["gpu0@node7", "gpu2@node7"]
    for plan, gpu in zip(plans, ("0", "2")):
        assert plan.env["CUDA_VISIBLE_DEVICES"] == gpu and plan.env["KNAS_DEVICE"] == "cuda"
        assert plan.env["OMP_NUM_THREADS"] == "8"  # 16 cores over 2 GPU workers
        argv = plan.argv
        assert argv[:6] == [sys.executable, "-m", "celery", "-A", "worker.celery_app", "worker"]
        assert argv[argv.index("--hostname") + 1] == plan.name
        assert argv[argv.index("--concurrency") + 1] == "1" and argv[argv.index("--pool") + 1] == "prefork"
        assert argv[argv.index("--queues") + 1] == "score,train"
    named = plan_workers(gpus="3", name="lab", queues="train", host="h", cores=4)
    assert named[0].name == "lab-gpu3@h" and "train" == named[0].argv[named[0].argv.index("--queues") + 1]


def test_cpu_worker_splits_the_cores_between_its_processes():
    (plan,) = plan_workers(device="cpu", concurrency=4, host="box", cores=16)
    assert plan.name == "cpu@box" and plan.argv[plan.argv.index("--concurrency") + 1] == "4"
    assert plan.env == {"KNAS_DEVICE": "cpu", "OMP_NUM_THREADS": "4", "MKL_NUM_THREADS": "4", "CUDA_VISIBLE_DEVICES": ""}
    for concurrency in (1, 2, 3, 5, 16):
        (plan,) = plan_workers(device="cpu", concurrency=concurrency, host="box", cores=16)
        assert concurrency * int(plan.env["OMP_NUM_THREADS"]) <= 16
    assert plan_workers(device="cpu", concurrency=8, cores=2, host="b")[0].env["OMP_NUM_THREADS"] == "1"
    assert plan_workers(device="cpu", threads=3, cores=2, host="b")[0].env["OMP_NUM_THREADS"] == "3"
    assert plan_workers(device="cpu", name="w1@elsewhere", cores=2)[0].name == "w1@elsewhere"


@pytest.mark.parametrize("kwargs", [{"gpus": "0,a"}, {"gpus": "1,1"}, {"gpus": " , "}, {"queues": "score,gpu"}])
def test_bad_options_are_refused(kwargs):
    with pytest.raises(click.BadParameter):
        plan_workers(host="h", cores=2, **kwargs)


def test_a_worker_that_dies_takes_the_others_down_with_a_failing_status():
    def child(code: str) -> tuple[WorkerProcess, subprocess.Popen]:
        argv = [sys.executable, "-c", code]
        return WorkerProcess(code[:20], argv), subprocess.Popen(argv)

    children = [child("import sys; sys.exit(3)"), child("import time; time.sleep(60)")]
    try:
        assert _supervise(children, {"signal": None}) == 3
        assert children[1][1].returncode is not None  # the sleeper was stopped, not left behind
    finally:
        for _, proc in children:
            if proc.poll() is None:
                proc.kill()


def _wait_gone(pids: list[int], timeout: float) -> list[int]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        alive = [pid for pid in pids if process_alive(pid)]
        if not alive:
            return []
        time.sleep(0.2)
    return [pid for pid in pids if process_alive(pid)]


def test_a_sigkilled_supervisor_takes_its_celery_processes_with_it(start_worker, pg_url):
    """`kill -9` of `knas worker` (OOM killer, a process manager's timeout): no Celery process outlives it."""
    worker = start_worker("orphans", "--concurrency", "2")
    store = Store(pg_url)
    try:
        wait_for_rows(store, {"orphans"}, timeout=120, procs=[worker])
    finally:
        store.dispose()

    def celery_processes() -> list[int] | None:  # the main process and its two pool children
        found = descendants(worker.proc.pid)
        return found if len(found) >= 3 else None

    below = wait_for(celery_processes, 30, "the Celery processes below the supervisor",
                     context=lambda: worker.output()[-2000:])
    assert len(below) >= 3, below
    worker.proc.send_signal(signal.SIGKILL)
    worker.proc.wait(timeout=10)
    left = _wait_gone(below, 15)
    assert not left, f"still running 15 s after the supervisor died: {left}\n{worker.output()[-2000:]}"


def test_the_pipe_fallback_stops_a_child_whose_supervisor_died(tmp_path):
    """Where prctl is unavailable, a watcher on a pipe SIGTERMs the child's group when the supervisor dies."""
    code = ("import sys, time; from knas.cli.worker_cmd import start_child; "
            "child = start_child([sys.executable, '-c', 'import time; time.sleep(120)'], {}, use_prctl=False); "
            "print(child.pid, flush=True); time.sleep(120)")
    supervisor = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True,
                                  cwd=Path(__file__).resolve().parents[2])
    try:
        child = int(supervisor.stdout.readline())
        assert process_alive(child)
        supervisor.kill()
        supervisor.wait(timeout=10)
        assert not _wait_gone([child], 10), "the child outlived its supervisor"
    finally:
        if supervisor.poll() is None:
            supervisor.kill()
