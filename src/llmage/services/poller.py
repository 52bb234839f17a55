"""The task poller, inside the server: lease due tasks, move each one step, settle exactly once.

One step, by status:
  CREATED     submit: CAS to SUBMITTING (channel, key and start time recorded) BEFORE the
              upstream create, then one create through the executor, never resent. Channels
              are tried in routing order past open breakers; one at its `max_concurrency`
              (tasks running upstream, counted in the database) is skipped, and when all are
              full the task stays queued (CREATED) until a slot frees. A create that certainly
              made nothing (refused connection, rate limit, auth, upstream balance) moves on
              to the next channel in the same step; a pool's other keys are tried first
  SUBMITTING  a create whose outcome is unknown (timeout, lost reply, a crash in between):
              recover it through the adapter (upstream list / echoed id), or fail and release
  PENDING     poll; map the provider's answer (the adapter returns our statuses only)
  RUNNING

Errors by kind (domain.errors.UpstreamKind, PROVIDERS.md §1.3): when no channel took it, a
rate limit or a create that certainly did not arrive goes back to CREATED and is retried later
(Retry-After honoured); a channel problem (auth, model not enabled, upstream balance) on every
channel fails the task unbilled, and is logged and counted against each channel; the user's
own bad request or moderated input fails it with a clear reason and never counts against the
channel; a poll that fails for good (401, 404, task gone) ends the task and refunds it instead
of retrying until the deadline.

Every state change is a compare-and-swap on the task's status; the final one shares a
transaction with the hold's settlement (services/task_settle.py). Leases expire, so a task whose
worker died is picked up again; after a restart every open task simply comes due.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import secrets
from typing import Any

from llmage.db.repos.tasks import ChannelFull, TaskRepo, TaskStateChanged, channel_slot_guard
from llmage.domain.catalog import Catalog
from llmage.domain.clock import now_ms
from llmage.domain.errors import UpstreamError, UpstreamKind
from llmage.domain.tasks import TaskRow, TaskStatus
from llmage.observability import metrics
from llmage.providers.contract import Channel
from llmage.providers.executor import SubmitOutcomeUnknown, TaskExecutor
from llmage.providers.registry import ProviderRegistry
from llmage.providers.tasks import PollResult, Submitted, TaskAdapter, TaskJob, TaskRef
from llmage.services.media import MediaService
from llmage.services.routing import ChannelDirectory
from llmage.services.task_settle import TaskSettler
from llmage.settings import Settings

log = logging.getLogger(__name__)

_SUBMIT_ATTEMPTS = 5
_SUBMIT_MS = "_submit_ms"  # our own entry in upstream_state: when the create started
_CLAIMED_MARGIN_MS = 60_000

_FAILURE_TEXT = {
    UpstreamKind.INPUT_MODERATION: "The provider's content moderation refused the input",
    UpstreamKind.CONTENT_POLICY: "The provider's content moderation refused the input",
    UpstreamKind.OUTPUT_MODERATION: "The provider's content moderation refused the result",
    UpstreamKind.BAD_REQUEST: "The provider refused the request",
    UpstreamKind.AUTH: "The upstream channel is misconfigured",
    UpstreamKind.MODEL_NOT_ENABLED: "The upstream channel cannot serve this model",
    UpstreamKind.QUOTA: "The upstream channel is out of quota",
    UpstreamKind.TASK_GONE: "The provider no longer knows this task",
}


def _redact(channel: Channel, text: str) -> str:
    """Upstream text loses the channel's credential values and address before it is stored
    (the settler redacts once more with every channel's values: services/task_settle.py)."""
    return channel.redact(text)


class TaskPoller:
    def __init__(
        self,
        *,
        settings: Settings,
        catalog: Catalog,
        repo: TaskRepo,
        settler: TaskSettler,
        media: MediaService,
        directory: ChannelDirectory,
        providers: ProviderRegistry,
        executor: TaskExecutor,
    ) -> None:
        self._s = settings
        self._catalog = catalog
        self._repo = repo
        self._settle = settler
        self._media = media
        self._directory = directory
        self._providers = providers
        self._exec = executor
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
                    channel, adapter = found
                    ref = self._ref(row, channel, row.upstream_id)
                    await self._exec.cancel(adapter, channel, ref, row.key_index)

        task = asyncio.create_task(run())
        self._running.add(task)
        task.add_done_callback(self._running.discard)

    # -- what a step works with -----------------------------------------------------------------

    async def _channel(self, row: TaskRow) -> tuple[Channel, TaskAdapter] | None:
        """The task's channel once chosen; before that, the first candidate that has a task
        adapter (routing orders candidates by priority and weight; failover builds on this)."""
        if row.channel_id is not None:
            ch = await self._directory.by_id(row.channel_id)
            if ch is None:
                return None
            adapter = self._providers.task(ch.provider)
            return (ch, adapter) if adapter else None
        for ch in await self._directory.candidates((row.model, row.llmid), platform=row.platform):
            adapter = self._providers.task(ch.provider)
            if adapter is not None:
                return ch, adapter
        return None

    def _job(self, row: TaskRow, channel: Channel) -> TaskJob:
        entry = self._catalog.any_by_llmid(row.llmid)
        started = row.upstream_state.get(_SUBMIT_MS, "")
        return TaskJob(
            task_id=row.id,
            kind=row.kind,
            mode=entry.kind.value if entry else row.kind,
            model=channel.upstream_model(row.model),
            params=row.params,
            media=self._media.inputs(row.inputs, self.base_url),
            llmid=row.llmid,
            submitted_at_ms=int(started) if started.isdigit() else row.updated_at,
        )

    def _ref(self, row: TaskRow, channel: Channel, upstream_id: str) -> TaskRef:
        state = {k: v for k, v in row.upstream_state.items() if not k.startswith("_")}
        return TaskRef(upstream_id, state, self._job(row, channel))

    # -- one step -------------------------------------------------------------------------------

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
            with contextlib.suppress(TaskStateChanged):
                await self._settle.move(row, row.status, {}, self._backoff(row))

    async def _advance(self, row: TaskRow) -> None:
        if now_ms() >= row.deadline_at:
            await self._settle.fail(
                row, "timeout", "The task did not finish in time; nothing charged"
            )
            self.cancel_upstream(row)
            return
        if row.status is TaskStatus.CREATED:
            await self._submit(row)
            return
        found = await self._channel(row)
        if found is None:
            await self._settle.fail(row, "channel_gone", "The upstream channel was removed")
            return
        channel, adapter = found
        # Upstream calls in flight per channel from this process (polls included); how many
        # tasks a channel runs upstream at once is `max_concurrency`, counted in the database.
        sem = self._channel_slots.setdefault(
            channel.id, asyncio.Semaphore(int(channel.options.get("max_calls", 256)))
        )
        async with sem:
            if row.status is TaskStatus.SUBMITTING:
                await self._recover(row, channel, adapter)
            else:
                await self._poll(row, channel, adapter)

    # -- submit, exactly once, failing over ------------------------------------------------------

    async def _submit(self, row: TaskRow, exclude: frozenset[int] = frozenset()) -> None:
        """Submit to the first candidate whose breaker and concurrency let it in; a create that
        certainly made nothing upstream moves on to the next candidate. A create of unknown
        outcome stops here: it is recovered, never sent anywhere again."""
        adapters: dict[int, TaskAdapter] = {}
        channels: list[Channel] = []
        names = (row.model, row.llmid)
        for ch in await self._directory.candidates(names, platform=row.platform):
            adapter = self._providers.task(ch.provider)
            if adapter is not None and ch.id not in exclude:
                adapters[ch.id] = adapter
                channels.append(ch)
        health = self._directory.health
        last: UpstreamError | None = None
        full = False
        for channel in health.route(channels):
            if now_ms() >= row.deadline_at:
                break
            try:
                row = await self._claim(row, channel)
            except ChannelFull:
                health.breaker(channel).neutral(health.clock())
                full = True
                continue
            failed = await self._create(row, channel, adapters[channel.id])
            if failed is None:
                return  # submitted, or its outcome is being recovered, or failed for good
            # A transient refusal anywhere makes a later retry worth it; otherwise the first
            # (highest priority) channel's problem is the one to report.
            if last is None or (failed.kind.transient and not last.kind.transient):
                last = failed
        if exclude and not full:
            # A create proven lost (services: _recover) and no other channel took the task.
            await self._settle.fail(
                row, "submit_lost", "The provider never created the task; nothing charged"
            )
            return
        await self._not_submitted(row, last, full)

    async def _claim(self, row: TaskRow, channel: Channel) -> TaskRow:
        """The task moves to SUBMITTING on `channel` (channel, key and start recorded) BEFORE
        the create; with the channel's `max_concurrency`, only into a free slot (ChannelFull)."""
        started = now_ms()
        key_index = self._directory.health.pick_key(channel) or 0
        marks = {
            "channel_id": channel.id,
            "provider": channel.provider,
            "key_index": key_index,
            "upstream_state": {_SUBMIT_MS: str(started)},
        }
        limit = channel.options.get("max_concurrency")
        guards = (
            channel_slot_guard(channel.id, limit, row.id)
            if isinstance(limit, int) and not isinstance(limit, bool) and limit > 0
            else []
        )
        # Nobody else may step it while the create is in flight: due only after the create's
        # own deadline (then a crashed worker's task is recovered, not resubmitted).
        in_flight_ms = int((self._s.task_upstream_timeout_seconds + 5) * 1000)
        await self._settle.move(row, TaskStatus.SUBMITTING, marks, in_flight_ms, guards)
        return dataclasses.replace(
            row,
            status=TaskStatus.SUBMITTING,
            channel_id=channel.id,
            provider=channel.provider,
            key_index=key_index,
            upstream_state={_SUBMIT_MS: str(started)},
        )

    async def _create(
        self, row: TaskRow, channel: Channel, adapter: TaskAdapter
    ) -> UpstreamError | None:
        """One create, with the other keys of a pool after a key error. Returns the error when
        nothing was created and another channel may take the task; None when this step is done
        with it."""
        health = self._directory.health
        tried = frozenset({row.key_index})
        while True:
            job = self._job(row, channel)
            try:
                submitted = await self._exec.submit(adapter, channel, job, row.key_index)
            except SubmitOutcomeUnknown as exc:
                log.warning("task %s: %s; recovering", row.id, exc.message)
                health.record(channel, UpstreamKind.TIMEOUT)
                # Give the upstream's list a moment to show a task it has just made: one poll
                # interval, the channel's own when it sets one.
                await self._settle.move(
                    row, row.status, {}, self._interval(channel, adapter, 0, None)
                )
                return None
            except UpstreamError as exc:
                exc.redact(channel.redact)
                metrics.UPSTREAM_ERRORS.labels(channel.provider, exc.kind.value).inc()
                if exc.kind.key_problem and health.usable_keys(channel) > 1:
                    health.set_aside(channel, row.key_index)
                    index = health.pick_key(channel, tried)
                    if index is not None:
                        tried |= {index}
                        # Still SUBMITTING on this channel; only the key changes.
                        await self._settle.move(
                            row, row.status, {"key_index": index}, self._in_flight_ms()
                        )
                        row = dataclasses.replace(row, key_index=index)
                        continue
                health.record(channel, exc.kind)
                self._health(channel, exc.kind)
                if exc.retryable:
                    return exc
                await self._settle.fail(row, *self._reason(channel, exc))
                return None
            health.record(channel, None)
            await self._submitted(row, channel, adapter, submitted)
            return None

    async def _not_submitted(self, row: TaskRow, last: UpstreamError | None, full: bool) -> None:
        """No candidate took the task: it waits in our queue (CREATED) for a channel slot or a
        retry, or fails when the channels refused it for good."""
        back: dict[str, Any] = {"channel_id": None, "provider": None, "upstream_state": None}
        if full:
            # Waiting for a slot is not an attempt: the lease's count is given back.
            back["polls"] = max(0, row.polls - 1)
            await self._settle.move(row, TaskStatus.CREATED, back, int(self._s.task_slot_retry_ms))
            return
        if last is None:
            # No channel can serve it right now (none configured, all removed): look later.
            await self._settle.move(row, TaskStatus.CREATED, back, self._backoff(row))
            return
        if last.kind.transient and row.polls < _SUBMIT_ATTEMPTS:
            delay = self._retry_delay(row, None, last)
            await self._settle.move(row, TaskStatus.CREATED, back, delay)
            return
        await self._settle.fail(row, *self._reason(None, last))

    def _in_flight_ms(self) -> int:
        return int((self._s.task_upstream_timeout_seconds + 5) * 1000)

    async def _submitted(
        self, row: TaskRow, channel: Channel, adapter: TaskAdapter, submitted: Submitted
    ) -> None:
        self._health(channel, None)
        state = {**row.upstream_state, **submitted.state}
        fields: dict[str, Any] = {"upstream_id": submitted.upstream_id, "upstream_state": state}
        try:
            if submitted.result is not None:
                await self._apply(row, channel, submitted.result, fields)
            else:
                interval = self._interval(channel, adapter, 0, None)
                await self._settle.move(row, TaskStatus.PENDING, fields, interval)
        except TaskStateChanged:
            # Cancelled while we were submitting: the job we just started upstream belongs to
            # nobody, so stop it rather than pay for it.
            ref = self._ref(row, channel, submitted.upstream_id)
            with contextlib.suppress(Exception):
                await self._exec.cancel(adapter, channel, ref, row.key_index)
            raise

    async def _recover(self, row: TaskRow, channel: Channel, adapter: TaskAdapter) -> None:
        job = self._job(row, channel)
        # What our other tasks on this channel already own is never the lost create's task
        # (a margin well beyond any clock skew: claiming too many ids costs nothing).
        since = job.submitted_at_ms - _CLAIMED_MARGIN_MS
        claimed = await self._repo.upstream_ids_since(channel.id, since, row.id)
        job = dataclasses.replace(job, claimed=claimed)
        try:
            found = await self._exec.recover(adapter, channel, job, row.key_index)
        except LookupError:
            await self._settle.fail(
                row,
                "submit_unknown",
                "The provider did not confirm the task and it cannot be looked up; nothing charged",
            )
            return
        except UpstreamError as exc:
            if exc.kind.transient or exc.kind in (UpstreamKind.TIMEOUT, UpstreamKind.UPSTREAM_BUG):
                await self._settle.move(row, row.status, {}, self._retry_delay(row, channel, exc))
            else:
                await self._settle.fail(row, *self._reason(channel, exc))
            return
        if found is None:
            # Certainly nothing upstream: another channel may take the task (never this one
            # again in this step, it just lost a create).
            await self._submit(row, frozenset({channel.id}))
            return
        log.info("task %s: recovered upstream task after an unknown create", row.id)
        await self._submitted(row, channel, adapter, found)

    # -- poll -----------------------------------------------------------------------------------

    async def _poll(self, row: TaskRow, channel: Channel, adapter: TaskAdapter) -> None:
        assert row.upstream_id is not None
        ref = self._ref(row, channel, row.upstream_id)
        try:
            result = await self._exec.poll(adapter, channel, ref, row.key_index)
        except UpstreamError as exc:
            metrics.UPSTREAM_ERRORS.labels(channel.provider, exc.kind.value).inc()
            if exc.kind.transient or exc.kind in (UpstreamKind.TIMEOUT, UpstreamKind.UPSTREAM_BUG):
                await self._settle.move(row, row.status, {}, self._retry_delay(row, channel, exc))
                return
            # 401, 404, task gone...: polling again cannot help. End it and refund.
            self._health(channel, exc.kind)
            await self._settle.fail(row, *self._reason(channel, exc))
            return
        await self._apply(row, channel, result, {}, adapter)

    async def _apply(
        self,
        row: TaskRow,
        channel: Channel,
        result: PollResult,
        fields: dict[str, Any],
        adapter: TaskAdapter | None = None,
    ) -> None:
        if result.status is TaskStatus.SUCCEEDED:
            outputs = await self._media.rehost(result.outputs, row.kind)
            await self._settle.succeed(row, result.usage, outputs, fields)
        elif result.status.terminal:
            kind = result.error_kind or UpstreamKind.RETRYABLE
            upstream = _redact(channel, result.error_message or "")
            if kind in _FAILURE_TEXT:
                message = f"{_FAILURE_TEXT[kind]}; nothing charged"
                code = kind.value
                if upstream:
                    message += f" ({upstream})"
            else:
                code = result.error_code or "upstream_failed"
                message = upstream or "The provider reported a failure; nothing charged"
            await self._settle.fail(row, code, message)
        else:
            status = TaskStatus.RUNNING if result.status is TaskStatus.RUNNING else row.status
            if status is TaskStatus.SUBMITTING:
                status = TaskStatus.PENDING
            if result.progress is not None:
                fields = {**fields, "progress": max(0, min(99, int(result.progress)))}
            interval = (
                self._interval(channel, adapter, row.polls, result.poll_after)
                if adapter is not None
                else self._backoff(row)
            )
            await self._settle.move(row, status, fields, interval)

    # -- helpers --------------------------------------------------------------------------------

    def _reason(self, channel: Channel | None, exc: UpstreamError) -> tuple[str, str]:
        """(error_code, message) stored on a failed task: ours first, the provider's after."""
        upstream = _redact(channel, exc.message) if channel is not None else exc.message
        base = _FAILURE_TEXT.get(exc.kind)
        if base is None:
            return "upstream_error", f"{upstream}; nothing charged"
        if exc.kind.channel_problem:
            # The provider's words describe our account, not the user's request.
            return exc.kind.value, f"{base}; nothing charged"
        return exc.kind.value, f"{base}: {upstream}; nothing charged"

    @staticmethod
    def _health(channel: Channel, kind: UpstreamKind | None) -> None:
        """Channel health for /metrics: a channel problem marks it unhealthy, a success heals.
        (The seam for a circuit breaker; the user's own errors never count.)"""
        if kind is None:
            metrics.CHANNEL_HEALTHY.labels(channel.name).set(1)
        elif kind.channel_problem:
            metrics.CHANNEL_HEALTHY.labels(channel.name).set(0)

    def _interval(
        self, channel: Channel, adapter: TaskAdapter, polls: int, hint: float | None
    ) -> int:
        """The provider's hint, else the channel's or provider's base interval growing ×1.5."""
        if hint is not None:
            return int(hint * 1000)
        configured = channel.options.get("poll_interval_ms")
        base = (
            float(configured)
            if configured is not None
            else max(self._s.task_poll_interval_ms, adapter.poll_interval * 1000)
        )
        return int(min(base * (1.5 ** min(polls, 10)), self._s.task_poll_max_interval_ms))

    def _retry_delay(self, row: TaskRow, channel: Channel | None, exc: UpstreamError) -> int:
        """The upstream's Retry-After when it gave one (never below the channel's base poll
        interval), else exponential backoff."""
        if exc.retry_after is not None:
            options = channel.options if channel is not None else {}
            floor = float(options.get("poll_interval_ms", self._s.task_poll_interval_ms))
            return int(max(exc.retry_after * 1000, floor))
        return self._backoff(row)

    @staticmethod
    def _backoff(row: TaskRow) -> int:
        return int(min(500 * (2 ** min(row.polls, 8)), 60_000))
