"""Live servers for the API tests: `knas serve` (uvicorn) in a subprocess on a free loopback port.

The embedded server (SQLite + in-process queue) is shared by the whole session;
tests that kill or break a server start their own.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

import httpx
import pytest

from knas.client import KnasClient
from tests.processes import free_port

REPO = Path(__file__).resolve().parents[2]

# Small ceilings so every limit can be hit with a cheap request.
LIMITS = {"KNAS_MAX_CANDIDATES": "500", "KNAS_MAX_PROBE_BATCH": "128", "KNAS_MAX_EPOCHS": "3"}


def clean_env(**extra: str) -> dict[str, str]:
    """This environment without any KNAS_ setting, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KNAS_")}
    # One OpenMP thread: on a shared 2-core machine, torch's second thread waiting on a busy core
    # made a 0.05 s candidate take seconds.
    env.update({"KNAS_DEVICE": "cpu", "OMP_NUM_THREADS": "1", **LIMITS, **extra})
    return env


def wait_until(predicate: Callable[[], Any], timeout: float, interval: float = 0.2, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


class LiveServer:
    """`knas serve` as a user starts it; `log` holds everything it printed."""

    def __init__(self, env: dict[str, str], log_path: Path, args: tuple[str, ...] = ()) -> None:
        self.env, self.log_path, self.args = env, log_path, tuple(args)  # args: more `knas serve` options
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else ""

    def start(self, timeout: float = 60) -> "LiveServer":
        with self.log_path.open("a") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "knas.cli.main", "serve", "--port", str(self.port), "--log-level", "warning",
                 *self.args],
                env=self.env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"knas serve exited with {self.process.returncode}:\n{self.log}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        raise AssertionError(f"knas serve did not become healthy in {timeout} s:\n{self.log}")

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs (what a crash or OOM kill looks like)."""
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()

    @property
    def token(self) -> str:
        """The admin token: the embedded server's HOME/token, or one made by `add_user` for a database server."""
        if getattr(self, "_token", None) is None:
            if "KNAS_DATABASE_URL" in self.env:
                self._token = self.add_user("admin", admin=True)
            else:
                self._token = (Path(self.env["KNAS_HOME"]) / "token").read_text().strip()
        return self._token

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def add_user(self, name: str, **options: Any) -> str:
        """A user in this server's store (as `knas users add` makes one); returns the token."""
        from models import Store
        from models.users import add_user

        store = Store(self.env.get("KNAS_DATABASE_URL") or f"sqlite:///{Path(self.env['KNAS_HOME']) / 'knas.db'}")
        try:
            return add_user(store, name, **options)
        finally:
            store.dispose()

    def client(self, timeout: float = 30, token: str | None = None) -> KnasClient:
        return KnasClient(self.url, timeout=timeout, token=token or self.token)


@pytest.fixture(scope="session")
def embedded_home(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("embedded-home")


@pytest.fixture(scope="session")
def embedded_server(embedded_home: Path, tmp_path_factory):
    server = LiveServer(clean_env(KNAS_HOME=str(embedded_home)),
                        tmp_path_factory.mktemp("logs") / "embedded.log").start()
    yield server
    server.stop()


@pytest.fixture
def api(embedded_server: LiveServer):
    with embedded_server.client() as client:
        yield client


@pytest.fixture
def http(embedded_server: LiveServer):
    """A raw httpx client, for requests KnasClient would never send."""
    with httpx.Client(base_url=embedded_server.url, timeout=30,
                      headers=embedded_server.auth) as client:
        yield client


@pytest.fixture
def start_server(tmp_path: Path):
    """Start a server of this test's own (stopped afterwards): `start_server(KNAS_HOME=..., ...)`."""
    started: list[LiveServer] = []

    def start(**env: str) -> LiveServer:
        server = LiveServer(clean_env(**env), tmp_path / f"server-{len(started)}.log")
        started.append(server)
        return server.start()

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def pg_server(pg_url: str, tmp_path: Path, start_server):
    return start_server(KNAS_HOME=str(tmp_path / "home"), KNAS_DATABASE_URL=pg_url)


@pytest.fixture
def pg_server_with_broker(pg_url: str, redis_url: str, tmp_path: Path, start_server):
    """The service as a lab runs it (API only: PostgreSQL store, Redis broker), with no worker."""
    return start_server(KNAS_HOME=str(tmp_path / "home"), KNAS_DATABASE_URL=pg_url, KNAS_BROKER_URL=redis_url)


def tiny_spec(n: int = 3, seed: int = 0, probe: int = 8, **overrides: Any) -> dict[str, Any]:
    """A job that finishes in seconds on 2 CPU cores: a few candidates, a small probe, no training."""
    return {"space": "nats-tss", "dataset": "digits", "candidates": {"strategy": "random", "n": n},
            "proxy": {"name": "mgm", "batch_size": probe}, "seed": seed, "top_k": 1,
            "final": {"mode": "none"}, **overrides}


@pytest.fixture(scope="session")
def finished_job(embedded_server: LiveServer) -> dict[str, Any]:
    """One tiny job run to the end on the shared server (several tests read it)."""
    with embedded_server.client() as client:
        job = client.submit(tiny_spec(n=3, seed=7))
        return client.wait(job["id"], timeout=120, interval=0.3)


# Fixtures other modules use as plain helpers (conftest modules are not importable by name).
@pytest.fixture
def make_spec():
    return tiny_spec


@pytest.fixture
def until():
    return wait_until


@pytest.fixture
def server_env():
    return clean_env


@pytest.fixture
def closed_port() -> int:
    """A loopback port nothing listens on."""
    return free_port()
