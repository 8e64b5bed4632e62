"""One settings object for every process, read from the environment (12-factor)."""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Environment variables with documented defaults; see README "Configuration"."""

    model_config = SettingsConfigDict(env_prefix="", case_sensitive=False, extra="ignore")

    database_url: str = Field(
        "sqlite:///syncguard.sqlite3",
        description="SQLAlchemy URL; SQLite is the one-machine default, PostgreSQL the production database.",
    )
    redis_url: str = Field("redis://127.0.0.1:6379/0", description="Redis holding the value locks.")
    celery_broker_url: str | None = Field(
        None, description="Celery broker; defaults to REDIS_URL so one Redis is enough to try it out."
    )
    smtp_host: str | None = Field(None, description="Without it, error reports are written to the log.")
    smtp_port: int | None = Field(None, ge=1, le=65535, description="Default 465 with SMTP_TLS=implicit, else 25.")
    smtp_from: str = "syncguard@localhost"
    smtp_tls: Literal["none", "starttls", "implicit"] | None = Field(
        None, description="none, starttls or implicit (SMTPS); default starttls if SMTP_STARTTLS is true, else none."
    )
    smtp_starttls: bool = Field(False, description="The older spelling of SMTP_TLS=starttls, still honoured.")
    smtp_ca_file: str | None = Field(
        None, description="PEM file of the CA(s) the relay's certificate is checked against, instead of the system's."
    )
    smtp_username: str | None = None
    smtp_password: str | None = None
    smtp_allow_plaintext_login: bool = Field(
        False, description="Allow SMTP_USERNAME's login over an unencrypted connection (a relay on a trusted network)."
    )
    smtp_timeout_s: float = 30.0
    report_max_entries: int = Field(
        500, ge=1, le=10_000, description="Quarantines, and failed exports, one report email lists; then totals."
    )
    report_max_bytes: int = Field(
        2 * 1024 * 1024, ge=256 * 1024, description="A report email is cut to fewer entries until it fits in this."
    )
    report_base_url: str | None = Field(
        None, description="Public address of the HTTP service, so a report email links its web report."
    )

    max_proxy_addresses: int = Field(300, ge=1, description="More proxy addresses than this is LargeObject.")
    lock_ttl_ms: int = Field(30_000, ge=100, description="A lock outliving a crashed worker expires after this.")
    lock_wait_s: float = Field(
        5.0, ge=0, description="How long an export spins for busy locks before handing back to Celery."
    )
    database_statement_timeout_s: float = Field(
        60, ge=0, description="PostgreSQL cancels a statement of a worker, beat or the CLI after this (0: never)."
    )
    api_statement_timeout_s: float = Field(
        10, ge=0, description="PostgreSQL cancels a statement of the HTTP API after this (0: never); the caller waits."
    )
    api_database_pool_size: int = Field(6, ge=1, description="Database connections one API process opens at most.")
    api_database_pool_timeout_s: float = Field(
        10, gt=0, description="How long an API request waits for a free database connection before its 503."
    )
    task_time_limit_s: int = Field(120, ge=1)
    export_retry_limit: int = Field(50, ge=0, description="Celery retries for lock contention or races.")
    export_crash_limit: int = Field(
        3, ge=0, description="An export whose worker died more often than this while applying it is a dead letter."
    )
    broker_visibility_timeout_s: int | None = Field(
        None, ge=1, description="Unacknowledged messages go back on the queue after this; default 10 x task limit."
    )
    redelivery_interval_s: float = Field(
        60, gt=0, description="How often beat re-sends posted exports the broker lost (stranded ones)."
    )
    export_batch_size: int = Field(
        50, ge=1, le=1000, description="Export messages a worker applies in one transaction (celery-batches)."
    )
    export_batch_wait_s: float = Field(
        0.05, gt=0, le=10, description="How long a worker waits to fill a batch before it applies what it has."
    )
    worker_prefetch_multiplier: int | None = Field(
        None, ge=1, description="Messages a worker process reserves; default 2 x EXPORT_BATCH_SIZE, so batches fill."
    )
    fast_release: bool = Field(True, description="Release waiters right after a freeing export commits.")
    release_interval_s: float = Field(3600, gt=0, description="How often beat runs the full release sweep.")
    conflict_history_retention_days: int = Field(
        90, ge=30, description="A conflict's history is kept this long after it ends (at least the overview's 30 days)."
    )
    report_interval_s: float = Field(3600, gt=0, description="How often beat sends the error reports.")
    sweep_batch_size: int = Field(500, ge=1, description="Freed values one sweep batch handles.")
    sweep_task_budget_s: float = Field(50, gt=0, description="A sweep task re-enqueues itself after this long.")
    sweep_concurrency: int = Field(
        4,
        ge=1,
        le=6,
        description="Releases one sweep runs at once (threads, each with one of the 6 database connections).",
    )
    beat_key_prefix: str = Field("syncguard:beat:", description="RedBeat's keys; also the beat lock's name.")
    api_max_body_bytes: int = Field(
        64 * 1024 * 1024, ge=1024, description="Largest request body the HTTP API reads; a larger one gets 413."
    )
    api_max_other_body_bytes: int = Field(
        1024 * 1024,
        ge=1024,
        description="Largest request body of every route but posting exports (at most API_MAX_BODY_BYTES); 413 past it.",
    )
    report_session_ttl_s: int = Field(
        8 * 3600, ge=1, description="A web report session ends this long after sign-in (server side and cookie)."
    )
    post_max_outstanding: int = Field(
        50_000,
        ge=0,
        description="A post holds while this many of its exports wait for the workers (0: never); bounds Redis.",
    )
    scim_write_wait_s: float = Field(
        30, gt=0, description="How long a SCIM write waits for its export to apply; past it, 503 with Retry-After."
    )
    scim_bulk_max_operations: int = Field(1000, ge=1, description="Most operations one SCIM /Bulk request may hold.")
    scim_bulk_max_payload_bytes: int = Field(
        8 * 1024 * 1024,
        ge=1024,
        description="Largest SCIM /Bulk body (at most API_MAX_BODY_BYTES); parsed in memory, ~6x its size at peak.",
    )

    @property
    def scim_bulk_payload_limit(self) -> int:
        """What /Bulk takes and announces as maxPayloadSize: its own bound, under the service-wide one."""
        return min(self.scim_bulk_max_payload_bytes, self.api_max_body_bytes)

    @field_validator("database_url")
    @classmethod
    def _use_psycopg3(cls, url: str) -> str:
        """Plain postgresql:// URLs mean psycopg 3, the driver we ship."""
        for prefix in ("postgresql://", "postgres://"):
            if url.startswith(prefix):
                return "postgresql+psycopg://" + url[len(prefix) :]
        return url

    @field_validator("report_base_url")
    @classmethod
    def _http_base_url(cls, url: str | None) -> str | None:
        if url is not None and not url.startswith(("https://", "http://")):
            raise ValueError(f"REPORT_BASE_URL must start with https:// or http://, not {url!r}")
        return url.rstrip("/") if url else None

    @model_validator(mode="after")
    def _one_tls_choice(self) -> Settings:
        if self.smtp_starttls and self.smtp_tls not in (None, "starttls"):
            raise ValueError(
                f"SMTP_STARTTLS=true contradicts SMTP_TLS={self.smtp_tls}: SMTP_STARTTLS is the older spelling "
                "of SMTP_TLS=starttls; drop it"
            )
        return self

    @property
    def smtp_tls_mode(self) -> Literal["none", "starttls", "implicit"]:
        return self.smtp_tls or ("starttls" if self.smtp_starttls else "none")

    @property
    def smtp_port_number(self) -> int:
        return self.smtp_port or (465 if self.smtp_tls_mode == "implicit" else 25)

    @property
    def broker_url(self) -> str:
        return self.celery_broker_url or self.redis_url

    @property
    def prefetch_multiplier(self) -> int:
        return self.worker_prefetch_multiplier or 2 * self.export_batch_size

    @property
    def task_soft_time_limit_s(self) -> int:
        """A task gets `SoftTimeLimitExceeded` here, a tenth before the hard limit kills its process."""
        return max(1, int(self.task_time_limit_s * 0.9))

    @property
    def visibility_timeout_s(self) -> int:
        """Above any task's life (time limit, retry countdowns), so a running export is not handed out twice."""
        return self.broker_visibility_timeout_s or self.task_time_limit_s * 10

    @property
    def stranded_after_s(self) -> float:
        """A posted export still not done after this, with nothing queued, was lost by the broker."""
        return self.visibility_timeout_s + 2 * self.redelivery_interval_s


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
