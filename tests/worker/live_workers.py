"""Helpers for the live tests: `knas worker` subprocesses on the test Postgres + Redis (see conftest.py)."""
from __future__ import annotations

import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from tests.processes import process_alive

REPO = Path(__file__).resolve().parents[2]
TINY_PLUGIN = "tests.plugins.tiny_dataset"  # the test-only dataset, loaded by dotted name via KNAS_PLUGINS


def worker_env(pg_url: str, redis_url: str, home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KNAS_")}
    env.update(
        KNAS_HOME=str(home), KNAS_DATABASE_URL=pg_url, KNAS_BROKER_URL=redis_url, KNAS_PLUGINS=TINY_PLUGIN,
        KNAS_CHUNK_SIZE="2", KNAS_SWEEP_INTERVAL="1",
        PYTHONPATH=os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p),  # `tests.` importable
    )
    env.update(extra)
    return env


def descendants(pid: int) -> list[int]:
    """Every process below `pid` (Linux /proc), children before grandchildren."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        parents.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in parents.get(todo.pop(0), []):
            found.append(child)
            todo.append(child)
    return found


@dataclass
class WorkerProc:
    name: str
    proc: subprocess.Popen
    log: Path
    known: list[int]

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def remember_children(self) -> None:
        self.known = sorted(set(self.known) | set(descendants(self.proc.pid)))

    def stop(self, timeout: float = 30) -> int:
        """SIGTERM the supervisor (a warm shutdown of its workers); SIGKILL whatever is left after `timeout`."""
        self.remember_children()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
        deadline = time.time() + 10
        for pid in self.known:
            while process_alive(pid) and time.time() < deadline:
                time.sleep(0.1)
            if process_alive(pid):
                os.kill(pid, signal.SIGKILL)
        return self.proc.returncode


def wait_for_rows(store, names: set[str], timeout: float = 90, procs: list[WorkerProc] = ()) -> dict:
    """Wait until every named node has a `workers` row; returns {short name: row}."""
    from sqlalchemy import select

    from models import Worker

    deadline = time.time() + timeout
    while True:
        with store.session() as session:
            rows = {w.name.split("@")[0]: w for w in session.scalars(select(Worker))}
        if names <= set(rows):
            for p in procs:
                p.remember_children()
            return rows
        dead = [p for p in procs if p.proc.poll() is not None]
        if dead or time.time() > deadline:
            logs = "\n".join(f"--- {p.name}\n{p.output()[-3000:]}" for p in procs)
            raise AssertionError(f"workers {sorted(names - set(rows))} did not report within {timeout} s\n{logs}")
        time.sleep(0.3)
