"""The API server a test talks to: `knas serve` in a subprocess (`LiveServer`).

It takes its settings as KNAS_ variables (`clean_env` makes them: no KNAS_ variable of the developer's
shell leaks in) and offers `url`, `env`, `token` (the admin's), `auth` headers, `add_user`, `client()`
(a KnasClient), `http()` (a raw httpx client), `start()`, `stop()`, `kill()`.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx

from knas.client import KnasClient

from .paths import REPO
from .processes import free_port, kill_tree
from .waiting import wait_for

# Small ceilings so every limit can be hit with a cheap request.
LIMITS = {"KNAS_MAX_CANDIDATES": "500", "KNAS_MAX_PROBE_BATCH": "128", "KNAS_MAX_EPOCHS": "3"}


def clean_env(**extra: str) -> dict[str, str]:
    """This environment without any KNAS_ setting, plus the test limits and `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KNAS_")}
    # One OpenMP thread: on a shared 2-core machine, torch's second thread waiting on a busy core
    # made a 0.05 s candidate take seconds.
    env.update({"KNAS_DEVICE": "cpu", "OMP_NUM_THREADS": "1", **LIMITS, **extra})
    return env


class ServerClients:
    """What every server offers a test: the admin's token, users, clients (needs `url` and `env`)."""

    url: str
    env: dict[str, str]
    _token: str | None = None

    @property
    def database_url(self) -> str:
        return self.env.get("KNAS_DATABASE_URL") or f"sqlite:///{Path(self.env['KNAS_HOME']) / 'knas.db'}"

    @property
    def token(self) -> str:
        """The admin token: the embedded server's HOME/token, or one made by `add_user` for a database server."""
        if self._token is None:
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

        store = Store(self.database_url)
        try:
            return add_user(store, name, **options)
        finally:
            store.dispose()

    def client(self, timeout: float = 30, token: str | None = None) -> KnasClient:
        return KnasClient(self.url, timeout=timeout, token=token or self.token)

    def http(self, token: str | None = None, timeout: float = 30) -> httpx.Client:
        """A raw httpx client (the admin's token unless `token`), for requests KnasClient would never send."""
        return httpx.Client(base_url=self.url, timeout=timeout,
                            headers={"Authorization": f"Bearer {token or self.token}"})


class LiveServer(ServerClients):
    """`knas serve` as a user starts it, on a free loopback port (the same one on restart); `log` is what it printed.

    For tests about the process: a kill and a restart, `--workers N`, the start-up line, what it logs.
    """

    def __init__(self, env: dict[str, str], log_path: Path, args: tuple[str, ...] = (),
                 log_level: str = "warning") -> None:
        self.env, self.log_path, self.args = env, log_path, tuple(args)  # args: more `knas serve` options
        self.log_level = log_level
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def start(self, timeout: float = 60) -> "LiveServer":
        with self.log_path.open("a") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "knas.cli.main", "serve", "--port", str(self.port),
                 "--log-level", self.log_level, *self.args],
                env=self.env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        process = self.process

        def healthy() -> bool:
            if process.poll() is not None:
                raise AssertionError(f"knas serve exited with {process.returncode}:\n{self.log[-4000:]}")
            try:
                return httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        try:
            wait_for(healthy, timeout, "knas serve to answer /healthz", interval=0.1, context=lambda: self.log[-4000:])
        except AssertionError:
            self.stop()
            raise
        return self

    def kill(self) -> None:
        """SIGKILL to the server and anything below it: no shutdown code runs (a crash or an OOM kill)."""
        if self.process is not None and self.process.poll() is None:
            kill_tree(self.process.pid)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        """SIGTERM (uvicorn's graceful shutdown); SIGKILL after 15 s."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()

