"""The running platform: every long-lived component, built once from the settings.

The web app and the CLI both build one of these; nothing else constructs components. Only the
server runs the background workers (task poller, webhook sender, sweepers):
`start(workers=True)`, and only a server listens for other instances' cache invalidations
(`serve=True`); any platform, the CLI's included, announces its own changes (`invalidate`).
"""

from __future__ import annotations

import logging

from llmage.auth.crypto import CredentialBox
from llmage.auth.keys import KeyCache
from llmage.billing.alipay_client import AlipayClient
from llmage.billing.ledger import Ledger
from llmage.billing.reconcile import Violation, reconcile
from llmage.catalog import load_catalog, load_catalog_file
from llmage.db.engine import Database
from llmage.db.migrate import upgrade, upgrade_async
from llmage.db.repos.accounts import AccountRepo
from llmage.db.repos.channels import ChannelRepo
from llmage.db.repos.credits import AdjustmentRepo
from llmage.db.repos.finance import FinanceRepo
from llmage.db.repos.holds import HoldRepo
from llmage.db.repos.model_overrides import ModelOverrideRepo
from llmage.db.repos.redeem import RedeemRepo
from llmage.db.repos.sessions import SessionRepo
from llmage.db.repos.sms_codes import SmsCodeRepo
from llmage.db.repos.task_search import TaskSearchRepo
from llmage.db.repos.tasks import TaskRepo
from llmage.db.repos.topups import TopupRepo
from llmage.db.repos.usage import UsageRepo
from llmage.db.repos.webhooks import WebhookRepo
from llmage.domain.catalog import Catalog
from llmage.limits.limiter import Limiter
from llmage.net.fetch import GuardedFetcher
from llmage.net.resp import Redis
from llmage.providers.executor import TaskExecutor
from llmage.providers.registry import ProviderRegistry
from llmage.providers.sim import SimProvider
from llmage.providers.sim_media import SimMediaUpstream
from llmage.providers.transport import Transport
from llmage.providers.upstream import HttpUpstream, RoutedUpstream
from llmage.services.adjustments import AdjustmentService
from llmage.services.channel_health import ChannelHealth
from llmage.services.channels import ChannelService
from llmage.services.chat import ChatService
from llmage.services.console_auth import ConsoleAuth
from llmage.services.finance import FinanceService
from llmage.services.invalidation import CATALOG, CHANNELS, KEYS, InvalidationBus
from llmage.services.media import MediaService
from llmage.services.media_links import MediaLinks
from llmage.services.model_admin import ModelAdmin
from llmage.services.poller import TaskPoller
from llmage.services.redeem import RedeemService
from llmage.services.retention import MediaReaper
from llmage.services.routing import ChannelDirectory
from llmage.services.sessions import SessionService
from llmage.services.sweeper import HoldSweeper
from llmage.services.task_admin import TaskAdmin
from llmage.services.task_settle import TaskSettler
from llmage.services.tasks import TaskService
from llmage.services.topups import PendingTopupJob, TopupService, alipay_config
from llmage.services.webhook_secrets import WebhookSecrets
from llmage.services.webhooks import WebhookSender
from llmage.settings import Settings
from llmage.sms import make_sms_sender
from llmage.storage.factory import make_storage
from llmage.storage.video_tools import SimRenderer

log = logging.getLogger(__name__)

# While invalidations from other instances cannot arrive, no cache lives longer than this.
_UNINFORMED_TTL = 1.0


def upgrade_schema(settings: Settings) -> None:
    """Bring the database schema to the newest version, in place (`llmage migrate`)."""
    upgrade(settings.effective_database_url)


class Platform:
    def __init__(self, settings: Settings) -> None:
        s = self.settings = settings
        s.data_dir.mkdir(parents=True, exist_ok=True)
        self.db = Database(s.effective_database_url, s.sqlite_synchronous)
        # Its own copy: admin overrides change it in place, never the file's cached catalog.
        file_catalog = self.file_catalog()
        self.catalog = Catalog(
            file_catalog.all_entries(), file_catalog.aliases(), file_catalog.disabled()
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
        self.directory = ChannelDirectory(
            self.channels,
            self.box,
            s.channel_cache_ttl,
            ChannelHealth(
                breaker_failures=s.breaker_failures,
                breaker_cooldown=s.breaker_cooldown_seconds,
                key_cooldown=s.key_cooldown_seconds,
            ),
        )
        self.redis = Redis(s.redis_url, timeout=s.redis_timeout_seconds) if s.redis_url else None
        self.limiter = Limiter(
            self.redis, prefix=s.redis_prefix, lease_ms=int(s.limit_lease_seconds * 1000)
        )
        self.bus = InvalidationBus(self.redis, s.redis_url, s.redis_prefix)
        self.bus.on(KEYS, self.keys.invalidate)
        self.bus.on(CHANNELS, self.directory.invalidate)
        self.model_admin = ModelAdmin(
            ModelOverrideRepo(self.db.engine),
            self.catalog,
            self.file_catalog,
            lambda: self.invalidate(CATALOG),
        )
        self.bus.on(CATALOG, self.model_admin.refresh_soon)
        self.bus.on_state(self._cache_lifetimes)
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
            announce=lambda: self.invalidate(CHANNELS),
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
            limits=self.limiter,
            slot_wait=s.chat_slot_wait_seconds,
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
            limits=self.limiter,
        )
        self.task_admin = TaskAdmin(TaskSearchRepo(self.db.engine), self.tasks, self.media)
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
        # Money outside holds: top-up, redeem codes, manual adjustments, finance views
        alipay_cfg = alipay_config(s, self.poller.base_url)
        self.alipay = AlipayClient(alipay_cfg) if alipay_cfg else None
        self.topups = TopupService(
            TopupRepo(self.db.engine, self.db.money),
            self.alipay,
            subject=s.alipay_subject,
            order_ttl_seconds=s.alipay_order_ttl_seconds,
            check_interval_seconds=s.alipay_check_interval_seconds,
            min_amount=s.topup_min_amount,
            max_amount=s.topup_max_amount,
        )
        self.topup_job = PendingTopupJob(self.topups, s.alipay_check_interval_seconds)
        self.redeem = RedeemService(RedeemRepo(self.db.engine, self.db.money))
        self.adjustments = AdjustmentService(
            AdjustmentRepo(self.db.engine, self.db.money), self.accounts
        )
        self.finance = FinanceService(FinanceRepo(self.db.engine), self.accounts, s.timezone)
        self.reaper = (
            MediaReaper(
                self.db.engine,
                self.storage,
                retention_days=s.media_retention_days,
                interval_seconds=s.media_sweep_interval_seconds,
            )
            if s.media_retention_days
            else None
        )
        self._workers = False

    def file_catalog(self) -> Catalog:
        """The catalog file's models and prices (admin overrides not applied)."""
        s = self.settings
        return load_catalog_file(s.catalog_file) if s.catalog_file else load_catalog()

    def _cache_lifetimes(self, informed: bool) -> None:
        s = self.settings
        self.keys.ttl = s.key_cache_ttl if informed else min(s.key_cache_ttl, _UNINFORMED_TTL)
        self.directory.ttl = (
            s.channel_cache_ttl if informed else min(s.channel_cache_ttl, _UNINFORMED_TTL)
        )

    async def invalidate(self, topic: str) -> None:
        """Announce a change (keys, channels, catalog): here at once, elsewhere via Redis."""
        await self.bus.publish(topic)

    def _warn_about_sharing(self) -> None:
        s = self.settings
        if s.is_sqlite:
            return
        if s.storage_backend.strip().lower() == "local":
            log.warning(
                "media storage is local (%s) on a shared PostgreSQL database: other instances "
                "cannot serve this instance's media links; set LLMAGE_STORAGE_BACKEND=s3 "
                "(see README, Running several instances)",
                s.data_dir / "media",
            )
        if not s.secret_key:
            log.warning(
                "LLMAGE_SECRET_KEY is not set: this instance generated its own key in %s, so "
                "other instances cannot read its channel credentials or media links; give every "
                "instance the same LLMAGE_SECRET_KEY",
                s.data_dir,
            )

    async def start(
        self, *, migrate: bool = True, workers: bool = False, serve: bool = False
    ) -> None:
        if migrate:
            await upgrade_async(self.settings.effective_database_url)
        await self.db.start()
        try:
            await self.model_admin.refresh()
        except Exception as exc:  # e.g. a database not migrated yet: the file's catalog as is
            log.warning("model overrides not applied (%r); using the catalog file as it is", exc)
        if serve:
            self._warn_about_sharing()
            self._cache_lifetimes(self.bus.connected)
            await self.bus.start()
        if workers:
            await self.poller.start()
            await self.webhooks.start()
            await self.sweeper.start()
            if self.alipay is not None:
                await self.topup_job.start()
            if self.reaper is not None:
                await self.reaper.start()
            self._workers = True

    async def reconcile(self) -> list[Violation]:
        """Every money invariant over the whole ledger; the rules broken, with sample rows."""
        return await reconcile(self.db.engine)

    async def close(self) -> None:
        await self.bus.close()
        if self._workers:
            await self.topup_job.stop()
            if self.reaper is not None:
                await self.reaper.stop()
            await self.sweeper.stop()
            await self.webhooks.stop()
            await self.poller.stop()
        await self.limiter.close()
        if self.redis is not None:
            await self.redis.close()
        await self.transport.close()
        if self.alipay is not None:
            await self.alipay.close()
        await self.sms.close()
        await self.storage.close()
        await self.db.close()
