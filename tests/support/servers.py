"""The API server a test talks to: `create_app` in this process (`InProcessServer`), or `knas serve` (`LiveServer`).

Both take their settings as KNAS_ variables (`clean_env` makes them: no KNAS_ variable of the developer's
shell leaks in) and have the same face: `url`, `env`, `token` (the admin's), `auth` headers, `add_user`,
`client()` (a KnasClient), `http()` (a raw httpx client), `start()`, `stop()`. Route tests use the in-process
one; the subprocess is for tests about the process (docs/testing.md).
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import httpx

from knas.client import KnasClient
from knas.settings import Settings

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


class _GivenSettings(Settings):
    """Settings from the values given and nothing else: the test process's own KNAS_ variables never leak in."""

    @classmethod
    def settings_customise_sources(cls, settings_cls, init_settings, env_settings, dotenv_settings,
                                   file_secret_settings):
        return (init_settings,)


def settings_from(env: dict[str, str]) -> Settings:
    """The Settings `knas serve` would read from `env`'s KNAS_ variables (as strings, validated the same way)."""
    return _GivenSettings(**{k.removeprefix("KNAS_").lower(): v for k, v in env.items() if k.startswith("KNAS_")})


class InProcessServer(ServerClients):
    """`create_app(settings, queue=...)` under uvicorn in a thread of the test process, on a loopback port.

    For tests of what the routes answer, where a subprocess adds nothing: real HTTP (streams, client
    addresses, the `knas` CLI as a client all work as with `knas serve`), but it starts in milliseconds
    and the test can reach the app itself (`server.app.state.store`). `env` holds the KNAS_ settings,
    as for a `LiveServer` (only those are read); an embedded server's jobs run in this process, in the
    LocalQueue's thread. uvicorn is configured as `knas serve` configures it (X-Forwarded-For believed
    only from KNAS_FORWARDED_ALLOW_IPS); tests of `knas serve` itself (its options, its start-up line, a
    kill and a restart, --workers N) use a LiveServer.
    """

    def __init__(self, env: dict[str, str], queue: Any = None) -> None:
        self.env, self.queue = env, queue  # queue: a JobQueue to use instead of the one settings choose
        self.settings = settings_from(env)
        self.app: Any = None
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self._socket = socket.socket()
        self._socket.bind(("127.0.0.1", 0))
        self.port = self._socket.getsockname()[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60) -> "InProcessServer":
        import uvicorn

        from api.main import create_app

        self.app = create_app(self.settings, queue=self.queue)
        trusted = self.settings.forwarded_allow_ips.strip()
        config = uvicorn.Config(self.app, log_config=None, log_level="warning", access_log=False,
                                proxy_headers=bool(trusted), forwarded_allow_ips=trusted or None)
        server = self._server = uvicorn.Server(config)
        thread = self._thread = threading.Thread(target=server.run, kwargs={"sockets": [self._socket]},
                                                 name=f"knas-api-{self.port}", daemon=True)
        thread.start()

        def started() -> bool:
            if not thread.is_alive() and not server.started:
                raise AssertionError("the in-process API server stopped during start-up (its error is logged above)")
            return server.started

        wait_for(started, timeout, "the in-process API server to start", interval=0.01)
        return self

    def stop(self) -> None:
        """uvicorn's graceful shutdown: open streams end, the lifespan closes the store and the queue."""
        if self._thread is not None and self._thread.is_alive():
            self._server.should_exit = True
            self._thread.join(30)
            assert not self._thread.is_alive(), "the in-process API server did not stop within 30 s"
        self._socket.close()
