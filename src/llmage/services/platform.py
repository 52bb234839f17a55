"""The running platform: every long-lived component, built once from the settings.

The web app and the CLI both build one of these; nothing else constructs components. Only the
server runs the background workers (task poller, webhook sender): `start(workers=True)`.
"""

from __future__ import annotations

from llmage.auth.crypto import CredentialBox
from llmage.auth.keys import KeyCache
from llmage.billing.ledger import Ledger
from llmage.billing.reconcile import Violation, reconcile
from llmage.catalog import load_catalog, load_catalog_file
from llmage.db.engine import Database
from llmage.db.migrate import upgrade, upgrade_async
from llmage.db.repos.accounts import AccountRepo
from llmage.db.repos.channels import ChannelRepo
from llmage.db.repos.holds import HoldRepo
from llmage.db.repos.sessions import SessionRepo
from llmage.db.repos.sms_codes import SmsCodeRepo
from llmage.db.repos.tasks import TaskRepo
from llmage.db.repos.usage import UsageRepo
from llmage.db.repos.webhooks import WebhookRepo
from llmage.domain.catalog import Catalog
from llmage.net.fetch import GuardedFetcher
from llmage.providers.executor import TaskExecutor
from llmage.providers.registry import ProviderRegistry
from llmage.providers.sim import SimProvider
from llmage.providers.sim_media import SimMediaUpstream
from llmage.providers.transport import Transport
from llmage.providers.upstream import HttpUpstream, RoutedUpstream
from llmage.services.channels import ChannelService
from llmage.services.chat import ChatService
from llmage.services.console_auth import ConsoleAuth
from llmage.services.media import MediaService
from llmage.services.media_links import MediaLinks
from llmage.services.poller import TaskPoller
from llmage.services.routing import ChannelDirectory
from llmage.services.sessions import SessionService
from llmage.services.sweeper import HoldSweeper
from llmage.services.task_settle import TaskSettler
from llmage.services.tasks import TaskService
from llmage.services.webhook_secrets import WebhookSecrets
from llmage.services.webhooks import WebhookSender
from llmage.settings import Settings
from llmage.sms import make_sms_sender
from llmage.storage.factory import make_storage
from llmage.storage.video_tools import SimRenderer


def upgrade_schema(settings: Settings) -> None:
    """Bring the database schema to the newest version, in place (`llmage migrate`)."""
    upgrade(settings.effective_database_url)


class Platform:
    def __init__(self, settings: Settings) -> None:
        s = self.settings = settings
        s.data_dir.mkdir(parents=True, exist_ok=True)
        self.db = Database(s.effective_database_url, s.sqlite_synchronous)
        self.catalog: Catalog = (
            load_catalog_file(s.catalog_file) if s.catalog_file else load_catalog()
        )
        self.box = CredentialBox.from_settings(s.secret_key, s.data_dir)
        self.media_secret = s.media_secret.encode() if s.media_secret else self.box.derive("media")
        self.webhook_secret = (
            s.webhook_secret.encode() if s.webhook_secret else self.box.derive("webhooks")
        )
        self.accounts = AccountRepo(self.db.engine)
        self.webhook_secrets = WebhookSecrets(self.accounts, self.webhook_secret)
        self.channels = ChannelRepo(self.db.engine)
        self.usage = UsageRepo(self.db.engine)
        self.holds = HoldRepo(self.db.engine)
        self.task_repo = TaskRepo(self.db.engine, not self.db.is_sqlite)
        self.ledger = Ledger(self.db.money)
        self.keys = KeyCache(self.accounts, s.key_cache_ttl)
        self.sessions = SessionService(
            SessionRepo(self.db.engine),
            self.accounts,
            csrf_secret=self.box.derive("csrf"),
            ttl_seconds=s.session_ttl_seconds,
        )
        self.sms = make_sms_sender(s)
        self.console_auth = ConsoleAuth(
            accounts=self.accounts,
            sessions=self.sessions,
            codes=SmsCodeRepo(self.db.engine),
            sms=self.sms,
            code_secret=self.box.derive("sms-codes"),
            code_ttl_seconds=s.sms_code_ttl_seconds,
            code_attempts=s.sms_code_attempts,
        )
        self.directory = ChannelDirectory(self.channels, self.box, s.channel_cache_ttl)
        self.transport = Transport(
            pool_size=s.upstream_pool_size,
            connect_timeout=s.upstream_connect_timeout,
            read_timeout=s.upstream_read_timeout,
            total_timeout=s.upstream_total_timeout,
            stream_total_timeout=s.upstream_stream_total_timeout,
            stream_gap_timeout=s.upstream_stream_gap_timeout,
            keepalive_expiry=s.upstream_keepalive_expiry,
        )
        self.providers = ProviderRegistry(
            self.transport,
            SimProvider(
                latency_ms=s.sim_latency_ms,
                token_delay_ms=s.sim_token_delay_ms,
                failure_rate=s.sim_failure_rate,
            ),
        )
        # Every task adapter's requests go through this one executor: HTTP for real upstreams,
        # in process for the built-in `sim://` media server.
        self.sim_media = SimMediaUpstream(latency_ms=s.sim_task_latency_ms, renderer=SimRenderer())
        self.executor = TaskExecutor(
            RoutedUpstream(HttpUpstream(self.transport), {"sim": self.sim_media}),
            timeout=s.task_upstream_timeout_seconds,
            download_timeout=s.task_download_timeout_seconds,
        )
        self.channel_ops = ChannelService(
            repo=self.channels,
            tasks=self.task_repo,
            box=self.box,
            directory=self.directory,
            providers=self.providers,
            executor=self.executor,
            catalog=self.catalog,
        )
        self.chat = ChatService(
            catalog=self.catalog,
            directory=self.directory,
            providers=self.providers,
            ledger=self.ledger,
            default_max_tokens=s.chat_default_max_tokens,
            attachment_tokens=s.image_token_estimate,
            call_timeout=s.upstream_total_timeout,
            stream_timeout=s.upstream_stream_total_timeout,
        )
        self.storage = make_storage(s)
        self.fetcher = GuardedFetcher(
            max_bytes=s.max_input_file_bytes,
            timeout=s.fetch_timeout_seconds,
            allow_hosts=frozenset(s.fetch_allow_hosts),
        )
        self.media = MediaService(
            self.storage,
            self.fetcher,
            MediaLinks(self.storage, self.media_secret, s.media_url_ttl),
            s.max_input_file_bytes,
        )
        self.poller = TaskPoller(
            settings=s,
            catalog=self.catalog,
            repo=self.task_repo,
            settler=TaskSettler(
                catalog=self.catalog,
                ledger=self.ledger,
                currency=s.currency,
                redactor=self.directory.redactor,
            ),
            media=self.media,
            directory=self.directory,
            providers=self.providers,
            executor=self.executor,
        )
        self.tasks = TaskService(
            catalog=self.catalog,
            repo=self.task_repo,
            ledger=self.ledger,
            media=self.media,
            directory=self.directory,
            timeout_seconds=s.task_timeout_seconds,
            off_peak_timeout_seconds=s.task_off_peak_timeout_seconds,
            wake=self.poller.wake,
            on_cancel=self.poller.cancel_upstream,
        )
        self.webhooks = WebhookSender(
            repo=WebhookRepo(self.db.engine, not self.db.is_sqlite),
            tasks=self.task_repo,
            media=self.media,
            fetcher=self.fetcher,
            secret_for=self.webhook_secrets.signing_key,
            base_url=self.poller.base_url,
            retry_base_seconds=s.webhook_retry_base_seconds,
        )
        self.sweeper = HoldSweeper(self.holds, self.ledger, max_age_seconds=s.chat_hold_max_age)
        self._workers = False

    async def start(self, *, migrate: bool = True, workers: bool = False) -> None:
        if migrate:
            await upgrade_async(self.settings.effective_database_url)
        await self.db.start()
        if workers:
            await self.poller.start()
            await self.webhooks.start()
            await self.sweeper.start()
            self._workers = True

    async def reconcile(self) -> list[Violation]:
        """Every money invariant over the whole ledger; the rules broken, with sample rows."""
        return await reconcile(self.db.engine)

    async def close(self) -> None:
        if self._workers:
            await self.sweeper.stop()
            await self.webhooks.stop()
            await self.poller.stop()
        await self.transport.close()
        await self.sms.close()
        await self.storage.close()
        await self.db.close()
