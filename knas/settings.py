"""The one place settings come from (environment variables prefixed KNAS_).

Entry points call `get_settings()` and pass values down; nothing else reads
the environment. With no database or broker URL set, knas runs embedded:
SQLite under KNAS_HOME and an in-process queue.
"""
from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Annotated

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="KNAS_", extra="ignore")

    home: Path = Field(default=Path("~/.knas"), description="where the embedded store lives")
    database_url: str | None = Field(default=None, description="SQLAlchemy URL; default: SQLite under home")
    broker_url: str | None = Field(default=None, description="Celery broker; default: in-process queue")
    data_dir: Path | None = Field(default=None, description=(
        "datasets: built-in ones (CIFAR, ImageNet16, ...) under the first directory; image folders may be "
        "registered under any of them (colon-separated)"))
    data_roots: Annotated[list[Path], NoDecode] = Field(
        default_factory=list, description="every directory of KNAS_DATA_DIR (derived; do not set)")
    artifact_dir: Path | None = Field(default=None, description=(
        "checkpoints and exported models; default HOME/artifacts (on a cluster: a mount every node shares)"))
    loader_workers: int = Field(default=2, ge=0, le=64, description=(
        "processes that decode images from registered folders during training"))
    benchmark_dir: Path | None = Field(default=None, description="NATS-Bench files for benchmark mode")
    device: str = Field(default="auto", description="'auto', 'cpu', 'cuda' or 'cuda:N'")
    chunk_size: int = Field(default=25, ge=1, description="candidates per scoring task")
    max_candidates: int = Field(default=50_000, ge=1, description="largest candidate set a job may ask for")
    max_probe_batch: int = Field(default=1024, ge=1)
    max_epochs: int = Field(default=200, ge=1)
    max_top_k: int = Field(default=50, ge=1, description="largest top_k a job may ask for")
    max_training_epochs: int = Field(default=2400, ge=1, description=(
        "training work per job: top_k x final.epochs + final.retrain_epochs (a user's own limit may be lower)"))
    max_batch_size: int = Field(default=1024, ge=1, description="largest final.batch_size a job may ask for")
    max_user_priority: int = Field(default=5, ge=0, le=9, description=(
        "highest job priority a non-admin user may ask for (above it: admins only)"))
    visibility_timeout: int = Field(default=3600, ge=10, description="seconds before an unacked task is redelivered")
    lease_seconds: int = Field(default=600, ge=5, description="work with no progress for this long is re-enqueued")
    stall_timeout: int = Field(default=6 * 3600, ge=10, description="a job with no progress this long fails")
    sweep_interval: int = Field(default=30, ge=1, description="seconds between a worker's sweeps/heartbeats")
    plugins: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="comma-separated modules workers import (site datasets/proxies)")
    server: str = Field(default="http://127.0.0.1:8000", description="server URL for client commands")
    token: SecretStr | None = Field(default=None, description="API token for client commands (else HOME/token)")
    user_max_jobs: int = Field(default=10, ge=1, description="active jobs per user unless the user has its own limit")
    auth_failures_per_minute: int = Field(default=20, ge=1, description="failed logins per client IP before 429")
    auth_limiter_clients: int = Field(default=10_000, ge=1, description=(
        "client addresses the in-memory failed-login limiter remembers (without a Redis broker; the least "
        "recently failed is forgotten first)"))
    auth_cache_seconds: float = Field(default=1.0, ge=0, le=300, description=(
        "how long an API process trusts a token it has looked up (0: look every request up); a revoked or "
        "rotated token keeps working at most this long, on every API process"))
    events_poll_seconds: float = Field(default=0.5, gt=0, le=60, description=(
        "how often an open event stream (GET /v1/jobs/{id}/events) looks at its job"))
    events_keepalive_seconds: float = Field(default=15.0, gt=0, le=300, description=(
        "a comment line on an idle event stream this often, so proxies keep it open"))
    events_max_seconds: float = Field(default=1800.0, gt=0, description=(
        "an event stream closes after this long (the client reconnects with Last-Event-ID)"))
    forwarded_allow_ips: str = Field(default="", description=(
        "proxies whose X-Forwarded-For/-Proto headers are trusted (comma-separated IPs or '*'); default: none"))
    prometheus_multiproc_dir: str | None = Field(
        default=None, validation_alias="PROMETHEUS_MULTIPROC_DIR", description=(
            "prometheus_client's multiprocess directory: `knas serve --workers N` sets it for its processes "
            "(do not set it yourself)"))
    fanout_window: int = Field(default=2, ge=1, description="scoring chunks of one job in the queue at once (fair share)")

    @model_validator(mode="before")
    @classmethod
    def _roots(cls, values):
        """KNAS_DATA_DIR may list several directories (colon-separated): built-ins look in the first."""
        if isinstance(values, dict) and values.get("data_dir") is not None:
            roots = [Path(p) for p in str(values["data_dir"]).split(os.pathsep) if p]
            values = {**values, "data_dir": roots[0] if roots else None, "data_roots": roots}
        return values

    @field_validator("data_roots", mode="after")
    @classmethod
    def _expand_roots(cls, value: list[Path]) -> list[Path]:
        return [p.expanduser() for p in value]

    @field_validator("home", "data_dir", "benchmark_dir", "artifact_dir", mode="after")
    @classmethod
    def _expand(cls, value: Path | None) -> Path | None:
        return value.expanduser() if value is not None else None

    @field_validator("plugins", mode="before")
    @classmethod
    def _split(cls, value):
        return [m.strip() for m in value.split(",") if m.strip()] if isinstance(value, str) else value

    @property
    def embedded(self) -> bool:
        return self.database_url is None

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.home / 'knas.db'}"

    @property
    def effective_artifact_dir(self) -> Path:
        return self.artifact_dir if self.artifact_dir is not None else self.home / "artifacts"

    def dataset_roots(self) -> list[Path] | None:
        """Where image folders may be registered from: KNAS_DATA_DIR's directories. None (anywhere) only on
        the embedded store with no KNAS_DATA_DIR, where the user reads their own files."""
        if self.embedded and not self.data_roots:
            return None
        return list(self.data_roots)

    def client_token(self) -> str | None:
        """The token client commands send: KNAS_TOKEN, else the embedded server's HOME/token file."""
        if self.token is not None:
            return self.token.get_secret_value()
        path = self.home / "token"
        return path.read_text().strip() if path.is_file() else None

    def resolved_device(self) -> str:
        if self.device != "auto":
            return self.device
        import torch  # only workers resolve devices; the API never calls this

        return "cuda" if torch.cuda.is_available() else "cpu"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
