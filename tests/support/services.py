"""Real PostgreSQL and Redis for tests: a fresh database on the shared server, and private servers to break.

- `fresh_database()`: a new, empty database on the test PostgreSQL (127.0.0.1:5432, KNAS_TEST_PG_ADMIN),
  dropped afterwards; `REDIS_TEST_URL` is the test Redis database (KNAS_TEST_REDIS), flushed by its fixture.
- `RedisServer`: a private `redis-server` on a free port, without persistence, that a test kills and restarts.
- `PostgresCluster`: a private cluster (initdb in a temp dir, own port) that a test stops, crashes and restarts.

Why not pytest-postgresql / pytest-redis: their `postgresql_proc` / `redis_proc` are fixture factories with a
fixed scope, started once per fixture, where the reliability suite starts a private Redis per stack (several
per test) and kills, stops (`pg_ctl -m immediate`, a crash) and restarts them mid-test; their initdb runs as
the current user, and CI runs as root, where initdb refuses (PostgresCluster runs it as `postgres`); and an
unreachable server is an error there, where this suite must skip on a laptop and fail in CI
(`tests.support.require`). The per-test database itself is a dozen lines here (`fresh_database`).
The pytest fixtures over these live in tests/support/fixtures.py.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from .processes import free_port
from .require import require_binary, require_service
from .waiting import wait_for

PG_ADMIN_URL = os.environ.get("KNAS_TEST_PG_ADMIN", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
REDIS_TEST_URL = os.environ.get("KNAS_TEST_REDIS", "redis://127.0.0.1:6379/15")


@contextmanager
def fresh_database(prefix: str = "knas_test", admin_url: str = PG_ADMIN_URL) -> Iterator[str]:
    """A new, empty database (no schema) on the server of `admin_url`; dropped (connections and all) afterwards."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as c:
            c.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as error:  # noqa: BLE001
        admin.dispose()
        require_service(f"PostgreSQL at {make_url(admin_url).render_as_string(hide_password=True)}", error)
    try:
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


class RedisServer:
    """A private `redis-server` on a free loopback port, without persistence: a restart loses everything."""

    def __init__(self, workdir: Path) -> None:
        self.binary = require_binary("redis-server")
        self.workdir, self.port = workdir, free_port()
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def client(self):
        import redis

        return redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=2, socket_connect_timeout=2)

    def start(self) -> "RedisServer":
        with open(self.workdir / "redis.log", "a") as log:
            self.process = subprocess.Popen(
                [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                 "--dir", str(self.workdir), "--protected-mode", "no", "--loglevel", "warning"],
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        process = self.process

        def up() -> bool:
            if process.poll() is not None:
                raise AssertionError(f"redis-server exited: {(self.workdir / 'redis.log').read_text()[-2000:]}")
            try:
                with self.client() as c:
                    return bool(c.ping())
            except Exception:  # noqa: BLE001 - not listening yet
                return False

        wait_for(up, 20, f"redis-server on port {self.port}", interval=0.05)
        return self

    def kill(self) -> None:
        """SIGKILL: queued and unacknowledged messages are gone with it (no persistence)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()

    def backlog(self) -> int:
        """Messages waiting in the knas queues plus unacknowledged ones (0 = the broker is drained)."""
        with self.client() as c:
            keys = [k for pattern in ("score", "score:*", "train", "train:*") for k in c.keys(pattern)]
            waiting = sum(c.llen(k) for k in keys if c.type(k) == b"list")
            return waiting + c.hlen("unacked")


class PostgresCluster:
    """initdb into a temp dir, on its own port, as the `postgres` user when we are root (initdb refuses root)."""

    def __init__(self) -> None:
        self.initdb, self.pg_ctl = require_binary("initdb"), require_binary("pg_ctl")
        require_binary("postgres")
        self.root = Path(tempfile.mkdtemp(prefix="knas-pg-"))
        self.data, self.log = self.root / "data", self.root / "postgres.log"
        self.port = free_port()
        self.as_root = os.geteuid() == 0
        if self.as_root:
            import pwd

            try:
                user = pwd.getpwnam("postgres")
            except KeyError:
                require_service("a `postgres` system user", "initdb refuses to run as root")
            os.chown(self.root, user.pw_uid, user.pw_gid)
            self.root.chmod(0o700)
        self._run([self.initdb, "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"],
                  timeout=120)

    def _run(self, argv: list[str], timeout: float = 60, check: bool = True) -> subprocess.CompletedProcess:
        if self.as_root:
            argv = [require_binary("runuser"), "-u", "postgres", "--", *argv]
        result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
        if check and result.returncode != 0:
            log = self.log.read_text()[-3000:] if self.log.exists() else ""
            raise AssertionError(f"{' '.join(argv)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}\n{log}")
        return result

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def start(self) -> "PostgresCluster":
        options = (f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.root} -c fsync=off "
                   "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200")
        self._run([self.pg_ctl, "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60", "-o", options, "start"],
                  timeout=90)
        return self

    def stop(self, mode: str = "fast") -> None:
        """`fast`: clients are disconnected, the server shuts down cleanly; `immediate`: like a crash."""
        self._run([self.pg_ctl, "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop"], timeout=90, check=False)

    def running(self) -> bool:
        return self._run([self.pg_ctl, "-D", str(self.data), "status"], check=False).returncode == 0

    def create_database(self, name: str) -> str:
        from sqlalchemy import create_engine, text

        engine = create_engine(self.url(), isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as c:
                c.execute(text(f'CREATE DATABASE "{name}"'))
        finally:
            engine.dispose()
        return self.url(name)

    def destroy(self) -> None:
        if self.data.exists():
            self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)
