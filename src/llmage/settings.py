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
    # SQLite durability: FULL survives power loss; NORMAL (WAL) survives process crashes only
    sqlite_synchronous: str = "FULL"
    # Caches
    key_cache_ttl: float = 10.0
    channel_cache_ttl: float = 5.0
    # sim provider (built-in offline upstream)
    sim_latency_ms: float = 0.0
    sim_failure_rate: float = 0.0
    sim_token_delay_ms: float = 0.0
    catalog_file: Path | None = Field(
        None,
        description="JSON catalog replacing the shipped one (same format as catalog/models.json)",
    )
    log_level: str = "INFO"
    log_json: bool = True

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
