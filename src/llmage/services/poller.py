"""The task poller, inside the server: lease due tasks, move each one step, settle exactly once.

One step = submit (CREATED) or poll (PENDING/RUNNING). Every state change is a compare-and-swap
on the task's status; the final one shares a transaction with the hold's settlement, whose own
compare-and-swap makes a second settlement impossible — two pollers, a restart in the middle or
a cancel racing a finish all end with one terminal state and one charge. Leases expire, so a
task whose worker died is picked up again; after a restart every open task simply comes due.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from typing import Any

from llmage.billing.ledger import Hold, Ledger
from llmage.db.money import Stmt
from llmage.db.repos.tasks import TaskRepo, TaskStateChanged, advance_stmt
from llmage.db.repos.webhooks import delivery_insert
from llmage.domain.catalog import Catalog
from llmage.domain.clock import now_ms
from llmage.domain.errors import LlmageError, UpstreamError
from llmage.domain.media_pricing import quote_media
from llmage.domain.money import format_amount
from llmage.domain.tasks import ACTION_TYPE, TaskRow, TaskStatus
from llmage.observability import metrics
from llmage.providers.contract import Channel
from llmage.providers.registry import ProviderRegistry
from llmage.providers.tasks import TaskPoll, TaskProvider, TaskSubmission
from llmage.services.media import MediaService
from llmage.services.routing import ChannelDirectory
from llmage.settings import Settings

log = logging.getLogger(__name__)

_SUBMIT_ATTEMPTS = 5


class TaskPoller:
    def __init__(
        self,
        *,
        settings: Settings,
        catalog: Catalog,
        repo: TaskRepo,
        ledger: Ledger,
        media: MediaService,
        directory: ChannelDirectory,
        providers: ProviderRegistry,
    ) -> None:
        self._s = settings
        self._catalog = catalog
        self._repo = repo
        self._ledger = ledger
        self._media = media
        self._directory = directory
        self._providers = providers
        self.owner = f"poller-{secrets.token_hex(6)}"
        self._wake = asyncio.Event()
        self._slots = asyncio.Semaphore(settings.task_concurrency)
        self._channel_slots: dict[int, asyncio.Semaphore] = {}
        self._running: set[asyncio.Task[None]] = set()
        self._loop_task: asyncio.Task[None] | None = None

    def wake(self) -> None:
        self._wake.set()

    async def start(self) -> None:
        self._loop_task = asyncio.create_task(self._loop(), name="task-poller")

    async def stop(self) -> None:
        if self._loop_task:
            self._loop_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loop_task
        if self._running:
            # Steps in flight finish or are abandoned; their leases expire and they run again.
            await asyncio.wait(self._running, timeout=self._s.task_stop_grace_seconds)
            for t in self._running:
                t.cancel()

    @property
    def base_url(self) -> str:
        return self._s.public_base_url or f"http://{self._s.host}:{self._s.port}"

    async def _loop(self) -> None:
        lease_ms = int(self._s.task_lease_seconds * 1000)
        while True:
            try:
                free = self._s.task_concurrency - len(self._running)
                rows = []
                if free > 0:
                    now = now_ms()
                    rows = await self._repo.lease(
                        self.owner, now, now + lease_ms, min(free, self._s.task_lease_batch)
                    )
                for row in rows:
                    task = asyncio.create_task(self._step(row))
                    self._running.add(task)
                    task.add_done_callback(self._running.discard)
                if rows and len(rows) == min(free, self._s.task_lease_batch):
                    continue  # more may be due right now
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("task poller lease failed")
            self._wake.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self._s.task_idle_poll_seconds)

    def cancel_upstream(self, row: TaskRow) -> None:
        """Best effort, in the background: the money side of a cancel is already done."""
        if row.channel_id is None or row.upstream_id is None:
            return

        async def run() -> None:
            with contextlib.suppress(Exception):
                found = await self._channel(row)
                if found is not None and row.upstream_id is not None:
                    await found[1].cancel(found[0], row.upstream_id)

        task = asyncio.create_task(run())
        self._running.add(task)
        task.add_done_callback(self._running.discard)

    # -- one step -------------------------------------------------------------------------------

    async def _channel(self, row: TaskRow) -> tuple[Channel, TaskProvider] | None:
        if row.channel_id is not None:
            ch = await self._directory.by_id(row.channel_id)
            if ch is None:
                return None
            prov = self._providers.task(ch.provider)
            return (ch, prov) if prov else None
        for ch in await self._directory.candidates((row.model, row.llmid), platform=row.platform):
            prov = self._providers.task(ch.provider)
            if prov is not None:
                return ch, prov
        return None

    def _job(self, row: TaskRow, channel: Channel) -> TaskSubmission:
        return TaskSubmission(
            kind=row.kind,
            model=channel.upstream_model(row.model),
            params=row.params,
            media=self._media.inputs(row.inputs, self.base_url),
            llmid=row.llmid,
        )

    async def _step(self, row: TaskRow) -> None:
        try:
            async with self._slots:
                await self._advance(row)
        except TaskStateChanged:
            pass  # someone else (a cancel, another poller) moved it first: nothing to do
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("task %s step failed; will retry", row.id)
            await self._reschedule(row, row.status, {}, self._backoff(row))

    async def _advance(self, row: TaskRow) -> None:
        now = now_ms()
        if now >= row.deadline_at:
            await self._fail(row, "timeout", "The task did not finish in time; nothing charged")
            self.cancel_upstream(row)
            return
        found = await self._channel(row)
        if found is None:
            if row.status is TaskStatus.CREATED:
                await self._reschedule(row, row.status, {}, self._backoff(row))
            else:
                await self._fail(row, "channel_gone", "The upstream channel was removed")
            return
        channel, provider = found
        sem = self._channel_slots.setdefault(
            channel.id, asyncio.Semaphore(int(channel.options.get("max_concurrency", 256)))
        )
        job = self._job(row, channel)
        async with sem:
            if row.status is TaskStatus.CREATED:
                await self._submit(row, channel, provider, job)
            else:
                assert row.upstream_id is not None
                try:
                    poll = await provider.poll(channel, row.upstream_id, job)
                except UpstreamError as exc:
                    metrics.UPSTREAM_ERRORS.labels(channel.provider, exc.kind.value).inc()
                    await self._reschedule(row, row.status, {}, self._backoff(row))
                    return
                await self._apply(row, channel, poll)

    async def _submit(
        self, row: TaskRow, channel: Channel, provider: TaskProvider, job: TaskSubmission
    ) -> None:
        try:
            upstream_id = await provider.submit(channel, job)
        except UpstreamError as exc:
            metrics.UPSTREAM_ERRORS.labels(channel.provider, exc.kind.value).inc()
            if exc.retryable and row.polls < _SUBMIT_ATTEMPTS:
                await self._reschedule(row, row.status, {}, self._backoff(row))
            else:
                await self._fail(row, exc.code or "upstream_error", exc.message)
            return
        try:
            await self._reschedule(
                row,
                TaskStatus.PENDING,
                {
                    "channel_id": channel.id,
                    "provider": channel.provider,
                    "upstream_id": upstream_id,
                },
                self._interval(channel, 0, None),
            )
        except TaskStateChanged:
            # Cancelled (or taken by another poller) while we were submitting: the job we just
            # started upstream belongs to nobody, so stop it rather than pay for it.
            with contextlib.suppress(Exception):
                await provider.cancel(channel, upstream_id)
            raise

    async def _apply(self, row: TaskRow, channel: Channel, poll: TaskPoll) -> None:
        if poll.status is TaskStatus.SUCCEEDED:
            outputs = await self._media.rehost(poll.outputs, row.kind)
            await self._succeed(row, poll, outputs)
        elif poll.status in (TaskStatus.FAILED, TaskStatus.CANCELLED):
            await self._fail(
                row,
                poll.error_code or "upstream_failed",
                poll.error_message or "The provider reported a failure",
            )
        else:
            status = TaskStatus.RUNNING if poll.status is TaskStatus.RUNNING else row.status
            fields: dict[str, Any] = {}
            if poll.progress is not None:
                fields["progress"] = max(0, min(99, int(poll.progress)))
            await self._reschedule(
                row, status, fields, self._interval(channel, row.polls, poll.poll_after)
            )

    # -- state changes --------------------------------------------------------------------------

    def _interval(self, channel: Channel, polls: int, hint: float | None) -> int:
        """Per-provider backoff: the provider's hint, else its base interval growing ×1.5."""
        if hint is not None:
            return int(hint * 1000)
        base = float(channel.options.get("poll_interval_ms", self._s.task_poll_interval_ms))
        return int(min(base * (1.5 ** min(polls, 10)), self._s.task_poll_max_interval_ms))

    def _backoff(self, row: TaskRow) -> int:
        return int(min(500 * (2 ** min(row.polls, 8)), 60_000))

    async def _reschedule(
        self, row: TaskRow, status: TaskStatus, fields: dict[str, Any], delay_ms: int
    ) -> None:
        now = now_ms()
        values = {
            **fields,
            "status": status.value,
            "updated_at": now,
            # Never later than the deadline: a task that runs out of time fails on time.
            "next_poll_at": min(now + delay_ms, row.deadline_at),
        }
        await self._ledger.run([advance_stmt(row.id, row.status, values)], row.user_id)

    def _usage(self, row: TaskRow, poll: TaskPoll, charge: int) -> dict[str, Any]:
        entry = self._catalog.by_llmid(row.llmid)
        action = entry.kind.value if entry else row.kind
        usage: dict[str, Any] = {
            "action": action,
            "type": ACTION_TYPE.get(action, action),
            "model": row.model,
        }
        for name in ("duration", "resolution", "ratio", "size", "off_peak", "n"):
            if name in row.params:
                usage[name] = row.params[name]
        usage.update(poll.usage)
        usage["amount"] = format_amount(charge)
        usage["currency"] = self._s.currency
        return usage

    def _charge(self, row: TaskRow, poll: TaskPoll) -> int:
        """Priced again from what the provider reports it produced; never above the hold."""
        entry = self._catalog.by_llmid(row.llmid)
        if entry is None:
            return row.quoted
        measured = {k: v for k, v in poll.usage.items() if k in ("duration", "n", "resolution")}
        if "images" in poll.usage:
            measured["n"] = poll.usage["images"]
        try:
            actual = quote_media(entry, {**row.params, **measured, "model": row.model})
        except (LlmageError, TypeError, ValueError):  # a reported value the prices cannot read
            actual = row.quoted
        return max(0, min(actual, row.quoted))

    @staticmethod
    def _callback(row: TaskRow) -> list[Stmt]:
        # Queued in the same transaction as the terminal state: no finish without its callback.
        return [delivery_insert(row.id, row.callback_url, now_ms())] if row.callback_url else []

    async def _succeed(self, row: TaskRow, poll: TaskPoll, outputs: dict[str, Any]) -> None:
        charge = self._charge(row, poll)
        usage = self._usage(row, poll, charge)
        now = now_ms()
        fields = {
            "status": TaskStatus.SUCCEEDED.value,
            "progress": 100,
            "outputs": outputs,
            "usage": usage,
            "charged": charge,
            "updated_at": now,
            "finished_at": now,
        }
        settle = self._ledger.settle_program(
            Hold(row.hold_id, row.user_id, row.key_id, row.quoted), charge
        )
        await self._ledger.run(
            [advance_stmt(row.id, row.status, fields), *settle, *self._callback(row)],
            row.user_id,
        )
        metrics.HOLDS.labels("captured" if charge else "released").inc()
        metrics.CHARGED.labels("task").inc(charge)

    async def _fail(self, row: TaskRow, code: str, message: str) -> None:
        now = now_ms()
        # Provider text is kept (and shown, and sent to webhooks) only without our secrets.
        redact = await self._directory.redactor()
        fields = {
            "status": TaskStatus.FAILED.value,
            "error_code": redact(code, 64),
            "error_message": redact(message),
            "charged": 0,
            "updated_at": now,
            "finished_at": now,
        }
        settle = self._ledger.settle_program(
            Hold(row.hold_id, row.user_id, row.key_id, row.quoted), 0
        )
        await self._ledger.run(
            [advance_stmt(row.id, row.status, fields), *settle, *self._callback(row)],
            row.user_id,
        )
        metrics.HOLDS.labels("released").inc()
