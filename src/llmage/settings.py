"""The one settings object: environment (`LLMAGE_*`) or a TOML file named by `LLMAGE_CONFIG`."""

from __future__ import annotations

import os
import tomllib
from functools import cache
from pathlib import Path
from typing import Any

from pydantic import Field
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict


class _TomlSource(PydanticBaseSettingsSource):
    """Reads the optional config file; environment variables still win over it."""

    def __init__(self, settings_cls: type[BaseSettings]) -> None:
        super().__init__(settings_cls)
        path = os.environ.get("LLMAGE_CONFIG")
        self._data: dict[str, Any] = {}
        if path:
            with Path(path).open("rb") as fh:
                self._data = tomllib.load(fh)

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return self._data.get(field_name), field_name, False

    def __call__(self) -> dict[str, Any]:
        return dict(self._data)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LLMAGE_", extra="ignore")

    data_dir: Path = Field(
        Path("./var"), description="Where the SQLite file, secrets and media live"
    )
    database_url: str | None = Field(
        None,
        description="SQLAlchemy URL; default sqlite+aiosqlite:///<data_dir>/llmage.db. "
        "PostgreSQL: postgresql+asyncpg://user@host/db",
    )
    secret_key: str | None = Field(
        None, description="Fernet key for credentials at rest; generated into data_dir if unset"
    )
    host: str = "127.0.0.1"
    port: int = 8000
    currency: str = "CNY"
    public_base_url: str | None = None
    demo_key: str | None = Field(None, description="Fixed API key value for the --demo user")
    # Upstream relay
    upstream_connect_timeout: float = 10.0
    upstream_read_timeout: float = 300.0
    upstream_pool_size: int = 512
    max_body_bytes: int = 20 * 1024 * 1024
    # Billing
    chat_default_max_tokens: int = 8192
    image_token_estimate: int = 2000  # tokens held per image/file part in a chat prompt
    # SQLite durability of per-request holds and settlements. NORMAL (WAL) survives process
    # crashes; a power cut may lose the last few, which can only ever cost the platform (an
    # unrecorded charge), never a user. Credits are always committed with FULL.
    sqlite_synchronous: str = "NORMAL"
    # A chat hold still open after this long belongs to a request whose process died.
    chat_hold_max_age_seconds: float = 3600.0
    # Caches
    key_cache_ttl: float = 10.0
    channel_cache_ttl: float = 5.0
    # sim provider (built-in offline upstream)
    sim_latency_ms: float = 0.0
    sim_failure_rate: float = 0.0
    sim_token_delay_ms: float = 0.0
    sim_task_latency_ms: float = 3000.0  # how long a sim video/image job "runs"
    # Tasks (asynchronous generation)
    task_timeout_seconds: int = 3600  # an open task older than this fails and is refunded
    # ...unless it runs off-peak (`off_peak=Y`, Vidu): the upstream may start it hours later and
    # cancels (and refunds) it itself after 48 h, so it gets this long instead.
    task_off_peak_timeout_seconds: int = 49 * 3600
    task_lease_seconds: float = 30.0  # a worker's claim on a task; expired claims are retaken
    task_lease_batch: int = 200
    task_concurrency: int = 512  # steps in flight per process
    task_poll_interval_ms: float = 1000.0  # first poll delay; grows ×1.5 per poll
    task_poll_max_interval_ms: float = 30000.0
    # Total deadline of one upstream task call (create, poll, recover, cancel); a create still
    # unanswered then has an unknown outcome and is recovered, never resent.
    task_upstream_timeout_seconds: float = 120.0
    task_download_timeout_seconds: float = 600.0  # copying one result file from upstream
    task_idle_poll_seconds: float = 0.25
    task_stop_grace_seconds: float = 5.0
    task_workers: bool = True  # run the poller and webhook sender in this process
    max_input_file_bytes: int = 50 * 1024 * 1024
    max_upload_bytes: int = 200 * 1024 * 1024  # a whole multipart submit
    webhook_secret: str | None = None  # HMAC key for callbacks; derived from secret_key if unset
    webhook_retry_base_seconds: float = 5.0
    catalog_file: Path | None = Field(
        None,
        description="JSON catalog replacing the shipped one (same format as catalog/models.json)",
    )
    log_level: str = "INFO"
    log_json: bool = True
    # Media storage: "local" keeps files under <data_dir>/media; "s3" uses any S3-compatible store
    storage_backend: str = "local"
    s3_endpoint: str | None = Field(None, description="e.g. https://s3.example.com (path-style)")
    s3_bucket: str | None = None
    s3_access_key: str | None = None
    s3_secret_key: str | None = None
    s3_region: str = "us-east-1"
    # Signed media URLs
    media_url_ttl: int = Field(86400, description="Seconds a signed /media/ link stays valid")
    media_secret: str | None = Field(
        None, description="Signs media URLs; derived from the secret key when unset"
    )
    # Guarded fetcher for user-supplied URLs (images, videos, webhooks)
    fetch_allow_hosts: list[str] = Field(
        default_factory=list,
        description="host:port pairs exempt from the private-address rule (operator allow-list)",
    )
    fetch_timeout_seconds: float = 120.0  # whole exchange: DNS, redirects and body

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, _TomlSource(settings_cls), file_secret_settings)

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'llmage.db').resolve()}"

    @property
    def is_sqlite(self) -> bool:
        return self.effective_database_url.startswith("sqlite")


@cache
def get_settings() -> Settings:
    return Settings()
