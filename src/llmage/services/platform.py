"""The running platform: every long-lived component, built once from the settings.

The web app and the CLI both start one of these; nothing else constructs components.
"""

from __future__ import annotations

from llmage.auth.crypto import CredentialBox
from llmage.auth.keys import KeyCache
from llmage.billing.ledger import Ledger
from llmage.catalog import load_catalog, load_catalog_file
from llmage.db.engine import Database
from llmage.db.migrate import upgrade_async
from llmage.db.repos.accounts import AccountRepo
from llmage.db.repos.channels import ChannelRepo
from llmage.db.repos.usage import UsageRepo
from llmage.domain.catalog import Catalog
from llmage.providers.registry import ProviderRegistry
from llmage.providers.sim import SimProvider
from llmage.providers.transport import Transport
from llmage.services.chat import ChatService
from llmage.services.routing import ChannelDirectory
from llmage.settings import Settings


class Platform:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        self.db = Database(settings.effective_database_url, settings.sqlite_synchronous)
        self.catalog: Catalog = (
            load_catalog_file(settings.catalog_file) if settings.catalog_file else load_catalog()
        )
        self.box = CredentialBox.from_settings(settings.secret_key, settings.data_dir)
        self.accounts = AccountRepo(self.db.engine)
        self.channels = ChannelRepo(self.db.engine)
        self.usage = UsageRepo(self.db.engine)
        self.ledger = Ledger(self.db.money)
        self.keys = KeyCache(self.accounts, settings.key_cache_ttl)
        self.directory = ChannelDirectory(self.channels, self.box, settings.channel_cache_ttl)
        self.transport = Transport(
            pool_size=settings.upstream_pool_size,
            connect_timeout=settings.upstream_connect_timeout,
            read_timeout=settings.upstream_read_timeout,
        )
        self.providers = ProviderRegistry(
            self.transport,
            SimProvider(
                latency_ms=settings.sim_latency_ms,
                token_delay_ms=settings.sim_token_delay_ms,
                failure_rate=settings.sim_failure_rate,
            ),
        )
        self.chat = ChatService(
            catalog=self.catalog,
            directory=self.directory,
            providers=self.providers,
            ledger=self.ledger,
            default_max_tokens=settings.chat_default_max_tokens,
            attachment_tokens=settings.image_token_estimate,
        )

    async def start(self, *, migrate: bool = True) -> None:
        if migrate:
            await upgrade_async(self.settings.effective_database_url)
        await self.db.start()

    async def close(self) -> None:
        await self.transport.close()
        await self.db.close()
