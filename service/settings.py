"""One Settings object for the API, the CLI and (later) the workers, read from the environment."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import AliasChoices, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

VAR_DIR = Path("var")
DEV_WEBHOOK_SECRET = "dev-webhook-secret"


class Settings(BaseSettings):
    """Environment variables are the field names upper-cased with an ``RTBF_`` prefix;
    ``DATABASE_URL`` and ``REDIS_URL`` are also read without it."""

    model_config = SettingsConfigDict(env_prefix="RTBF_", extra="ignore")

    environment: str = Field("development", description="development | test | production")
    database_url: str = Field(
        f"sqlite:///{VAR_DIR}/rtbf.sqlite3",
        validation_alias=AliasChoices("RTBF_DATABASE_URL", "DATABASE_URL"),
        description="SQLAlchemy URL; postgresql+psycopg://... in production",
    )
    redis_url: str | None = Field(
        None,
        validation_alias=AliasChoices("RTBF_REDIS_URL", "REDIS_URL"),
        description="Redis for broker and hot-swap; unset = in-process worker and publish",
    )
    model_dir: Path = Field(VAR_DIR / "models", description="where checkpoint versions live")
    model_config_file: Path | None = Field(None, description="project config TOML (recsys)")
    max_items_per_request: int = Field(1000, ge=1, description="DELETE body limit (413 above)")
    max_k: int = Field(100, ge=1, description="largest k for recommendations")
    rate_limit_per_second: float = Field(50.0, gt=0, description="per API key, sustained")
    rate_limit_burst: int = Field(100, ge=1, description="per API key, burst size")
    model_poll_seconds: float = Field(
        5.0, ge=0, description="how often a replica checks for a new active model version"
    )
    key_cache_seconds: float = Field(5.0, ge=0, description="API key lookups cached this long")
    batch_window_seconds: float = Field(
        1.0, ge=0, description="how long the batcher waits to gather deletions into one job"
    )
    max_batch_size: int = Field(1000, ge=1, description="most deletion requests in one job")
    job_lease_seconds: float = Field(
        600.0, gt=0, description="a running job not finished by then is taken over (worker died)"
    )
    inprocess_worker: bool = Field(
        True, description="without REDIS_URL, run unlearning jobs in a thread of the API process"
    )
    job_max_attempts: int = Field(5, ge=1, description="attempts before a job fails for good")
    redis_prefix: str = Field("rtbf", description="prefix of every Redis key and channel")
    worker_device: str = Field("auto", description="cpu, cuda or auto for unlearning jobs")
    threadpool_size: int = Field(4, ge=1, description="worker threads for sync endpoints")
    switch_interval_seconds: float = Field(
        0.001, gt=0, description="Python's GIL switch interval in the API process"
    )
    log_json: bool = Field(
        True, description="configure root logging as JSON lines with request ids (stderr)"
    )
    log_level: str = Field("INFO", description="root log level when log_json is set")
    webhook_secret: str = Field(
        DEV_WEBHOOK_SECRET, description="HMAC-SHA256 key of the status webhooks' signature"
    )
    webhook_timeout_seconds: float = Field(5.0, gt=0, description="per webhook POST")
    webhook_max_attempts: int = Field(10, ge=1, description="webhook attempts before giving up")
    webhook_backoff_seconds: float = Field(
        1.0, ge=0, description="webhook retry delay: this * 2**attempts, jittered, <= 300 s"
    )
    host: str = "127.0.0.1"
    port: int = 8000

    @field_validator("database_url")
    @classmethod
    def _known_driver(cls, url: str) -> str:
        if url.startswith("postgresql://") or url.startswith("postgres://"):
            # psycopg 3 is the driver we ship; plain postgresql:// would ask for psycopg2
            return "postgresql+psycopg://" + url.split("://", 1)[1]
        if not (url.startswith("sqlite") or url.startswith("postgresql+psycopg")):
            raise ValueError(
                f"DATABASE_URL {url!r}: use sqlite:///path or postgresql+psycopg://user@host/db"
            )
        return url

    @model_validator(mode="after")
    def _real_webhook_secret(self) -> Settings:
        if self.environment == "production" and self.webhook_secret == DEV_WEBHOOK_SECRET:
            raise ValueError(
                "RTBF_WEBHOOK_SECRET is the development default; set a random secret "
                "(e.g. `python -c 'import secrets; print(secrets.token_hex(32))'`) in production"
            )
        return self

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
