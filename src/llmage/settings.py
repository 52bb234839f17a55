"""The one settings object: environment (`LLMAGE_*`) or a TOML file named by `LLMAGE_CONFIG`."""

from __future__ import annotations

import os
import tomllib
from functools import cache
from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr
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
    # Upstream relay. Every call has an end: the read timeout is only an idle limit (no byte
    # for that long); the totals bound a whole call (a chat request's failovers included), the
    # gap the silence between two events of a stream.
    upstream_connect_timeout: float = 10.0
    upstream_read_timeout: float = 300.0
    upstream_total_timeout: float = Field(
        600.0, gt=0, description="Seconds a non-stream upstream call may take, start to end"
    )
    upstream_stream_total_timeout: float = Field(
        1800.0, gt=0, description="Seconds a streamed upstream call may take, start to end"
    )
    upstream_stream_gap_timeout: float = Field(
        300.0, gt=0, description="Longest wait for the next event of a stream (the first too)"
    )
    upstream_keepalive_expiry: float = Field(
        4.0, ge=0, description="Pooled upstream connections idle longer than this are not reused"
    )
    upstream_pool_size: int = 512
    # Routing around bad channels (services/channel_health.py): a channel's options override
    # the breaker's defaults per channel (`breaker_failures`, `breaker_cooldown_seconds`).
    breaker_failures: int = Field(
        5, ge=1, description="Consecutive channel failures that open a channel's breaker"
    )
    breaker_cooldown_seconds: float = Field(
        30.0, ge=0, description="How long an open breaker waits before one probe call"
    )
    key_cooldown_seconds: float = Field(
        60.0, ge=0, description="A pool key that failed for auth or balance sits out this long"
    )
    chat_slot_wait_seconds: float = Field(
        5.0,
        ge=0,
        description="Longest wait for a chat slot of a channel at its max_chat_concurrency, "
        "before a 429 with Retry-After",
    )
    max_body_bytes: int = 20 * 1024 * 1024
    # Billing
    chat_default_max_tokens: int = 8192
    image_token_estimate: int = 2000  # tokens held per image/file part in a chat prompt
    # SQLite durability of per-request holds and settlements. NORMAL (WAL) survives process
    # crashes; a power cut may lose the last few, which can only ever cost the platform (an
    # unrecorded charge), never a user. Credits are always committed with FULL.
    sqlite_synchronous: str = "NORMAL"
    # A chat hold still open after this long belongs to a request whose process died. Unset, it
    # is the longest call the upstream deadlines allow plus the margin (see chat_hold_max_age).
    chat_hold_max_age_seconds: float | None = None
    chat_hold_margin_seconds: float = Field(
        300.0,
        ge=0,
        description="Added to the longest possible chat call before its hold counts as "
        "abandoned: settlement time and clock differences between instances",
    )
    # Caches (a change announced through the invalidation bus drops them at once)
    key_cache_ttl: float = 10.0
    channel_cache_ttl: float = 5.0
    # Several instances: Redis shares rate/concurrency limits and carries cache invalidation.
    # Money never depends on it: without Redis (or while it is down) limits count per process.
    redis_url: str | None = Field(None, description="e.g. redis://127.0.0.1:6379/0")
    redis_prefix: str = Field("llmage:", description="Prefix of every Redis key and channel")
    redis_timeout_seconds: float = 0.25  # one limit check; past it, the process counts alone
    limit_lease_seconds: float = 900.0  # a concurrency slot of a request whose instance died
    # Roles: serve_api=false makes a poller-only instance (/healthz and /metrics only);
    # task_workers=false makes an API-only instance.
    serve_api: bool = True
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
    # A task whose channels are all at their max_concurrency stays queued; it looks for a free
    # slot again this often (a task finishing on this instance looks at once).
    task_slot_retry_ms: float = 1000.0
    task_stop_grace_seconds: float = 5.0
    task_workers: bool = True  # run the poller, webhook sender and sweepers in this process
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
    # Sealed media URLs
    media_url_ttl: int = Field(86400, description="Seconds a /media/ link stays valid")
    media_secret: str | None = Field(
        None, description="Seals media URLs (encrypts them); derived from the secret key if unset"
    )
    media_retention_days: float | None = Field(
        None,
        description="Delete stored task inputs and outputs this many days after the task "
        "finished (the task keeps its record); unset keeps them forever",
        gt=0,
    )
    media_sweep_interval_seconds: float = 3600.0
    # Guarded fetcher for user-supplied URLs (images, videos, webhooks)
    fetch_allow_hosts: list[str] = Field(
        default_factory=list,
        description="host:port pairs exempt from the private-address rule (operator allow-list)",
    )
    fetch_timeout_seconds: float = 120.0  # whole exchange: DNS, redirects and body
    # Time zone of dates in the console (date filters, the daily spend chart)
    timezone: str = "Asia/Shanghai"
    # Top-up (Alipay, RSA2 keys). Unset app id: top-up is off. Notify and return URLs are
    # <public_base_url>/api/payments/alipay/notify and .../return: Alipay must reach the first.
    alipay_app_id: str | None = None
    alipay_seller_id: str | None = Field(None, description="The merchant's PID (2088...)")
    alipay_private_key: SecretStr | None = Field(
        None, description="The app's RSA private key: PEM, bare base64, or a path to either"
    )
    alipay_public_key: str | None = Field(
        None, description="Alipay's RSA public key (not the app's): PEM, bare base64, or a path"
    )
    alipay_gateway: str = "https://openapi.alipay.com/gateway.do"
    alipay_subject: str = "账户充值"  # the order title the buyer sees in Alipay
    alipay_order_ttl_seconds: int = 1800  # sent as time_expire; closed locally after that
    alipay_check_interval_seconds: float = 60.0  # how often pending orders are queried
    topup_min_amount: str = "1"  # currency units
    topup_max_amount: str = "50000"

    # Console: sessions, CSRF, SMS
    session_ttl_seconds: int = Field(
        7 * 86400, description="A console login lasts this long (absolute; logout ends it)"
    )
    cookie_secure: bool | None = Field(
        None,
        description="Mark console cookies Secure; default: when the request came over https",
    )
    console_origins: list[str] = Field(
        default_factory=list,
        description="Extra origins (scheme://host[:port]) allowed to send unsafe console "
        "requests, besides the server's own and LLMAGE_PUBLIC_BASE_URL's",
    )
    sms_backend: str = Field("log", description="log (codes in the server log) or aliyun")
    sms_code_ttl_seconds: int = 300
    sms_code_attempts: int = 5  # wrong guesses that burn a code
    sms_aliyun_endpoint: str = "https://dysmsapi.aliyuncs.com"
    sms_aliyun_access_key_id: str | None = None
    sms_aliyun_access_key_secret: SecretStr | None = None
    sms_aliyun_sign_name: str | None = None
    sms_aliyun_template_code: str | None = None

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
    def chat_hold_max_age(self) -> float:
        """Seconds after which an open chat hold is released by the sweeper."""
        if self.chat_hold_max_age_seconds is not None:
            return self.chat_hold_max_age_seconds
        longest = max(self.upstream_total_timeout, self.upstream_stream_total_timeout)
        return longest + self.chat_hold_margin_seconds

    @property
    def is_sqlite(self) -> bool:
        return self.effective_database_url.startswith("sqlite")


@cache
def get_settings() -> Settings:
    return Settings()
