"""The one executor every task adapter runs through: build → sign → send → classify → parse.

Adapters stay pure (providers/tasks.py); this module does the IO around them, the same way for
every provider: picks the credential (a key of a pool by index), gives the adapter the time,
loads input bytes when the adapter wants them, sends through the shared Upstream, turns an error
reply into an UpstreamError of one kind (the adapter's `classify`), and measures latency and
errors per channel for /metrics.

A create is special (exactly-once, DESIGN §6): it is sent once and never resent here. When its
outcome is unknown — no reply in time, the connection broke after the request left, or the
upstream answered 5xx after taking the body — `submit` raises `SubmitOutcomeUnknown`, and the
caller recovers the task through the adapter's `recover` step or fails it.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable

from llmage.domain.credentials import pick
from llmage.domain.errors import UpstreamError, UpstreamKind
from llmage.observability import metrics
from llmage.providers.contract import Channel
from llmage.providers.tasks import (
    CallContext,
    MediaInput,
    PollResult,
    Submitted,
    TaskAdapter,
    TaskJob,
    TaskOutput,
    TaskRef,
)
from llmage.providers.upstream import TransportFailure, Upstream
from llmage.providers.wire import UpstreamReply, UpstreamRequest, join_url

log = logging.getLogger(__name__)

MAX_REPLY_BYTES = 8 << 20  # a JSON reply; b64 images may be large
MAX_DOWNLOAD_BYTES = 512 << 20


class SubmitOutcomeUnknown(UpstreamError):
    """The create may or may not have made an upstream task: recover it, never resend it."""

    def __init__(self, message: str) -> None:
        super().__init__(UpstreamKind.TIMEOUT, message)


class TaskExecutor:
    def __init__(
        self,
        upstream: Upstream,
        *,
        timeout: float = 60.0,
        download_timeout: float = 300.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.upstream = upstream
        self._timeout = timeout
        self._download_timeout = download_timeout
        self._clock = clock

    def context(self, adapter: TaskAdapter, channel: Channel, key_index: int = 0) -> CallContext:
        return CallContext(
            channel=channel,
            credential=pick(channel.credentials, key_index),
            now=self._clock(),
            base_url=(channel.base_url or adapter.default_base_url).rstrip("/"),
        )

    async def call(
        self,
        adapter: TaskAdapter,
        ctx: CallContext,
        request: UpstreamRequest,
        *,
        op: str,
        deadline: float | None = None,
        max_bytes: int = MAX_REPLY_BYTES,
    ) -> UpstreamReply:
        """Sign, send, classify. Raises UpstreamError (TransportFailure when no reply came)."""
        signed = adapter.sign(ctx, request)
        channel = ctx.channel
        started = time.perf_counter()
        outcome = "ok"
        try:
            reply = await self.upstream.send(
                signed, deadline=deadline or self._timeout, max_bytes=max_bytes
            )
            error = adapter.classify(reply)
            if error is not None:
                outcome = error.kind.value
                raise error
            return reply
        except UpstreamError as exc:
            outcome = exc.kind.value
            if exc.kind.channel_problem:
                # Never the user's fault and never billed: an operator must look at this channel.
                log.warning(
                    "channel %s (%s) %s: %s [upstream code %s]",
                    channel.name,
                    channel.provider,
                    exc.kind.value,
                    exc.message,
                    exc.upstream_code,
                )
            raise
        finally:
            metrics.CHANNEL_CALLS.labels(channel.name, op, outcome).inc()
            metrics.CHANNEL_LATENCY.labels(channel.name, op).observe(time.perf_counter() - started)

    @staticmethod
    async def _with_bytes(job: TaskJob) -> TaskJob:
        media = {
            slot: [
                f if f.data is not None else dataclasses.replace(f, data=await f.read())
                for f in files
            ]
            for slot, files in job.media.items()
        }
        return dataclasses.replace(job, media=media)

    # -- operations -----------------------------------------------------------------------------

    async def submit(
        self, adapter: TaskAdapter, channel: Channel, job: TaskJob, key_index: int = 0
    ) -> Submitted:
        if adapter.needs_bytes(job):
            job = await self._with_bytes(job)
        ctx = self.context(adapter, channel, key_index)
        request = adapter.submit_request(ctx, job)
        try:
            reply = await self.call(adapter, ctx, request, op="submit")
        except TransportFailure as exc:
            if exc.maybe_sent:
                raise SubmitOutcomeUnknown(f"create outcome unknown: {exc.message}") from exc
            raise
        except UpstreamError as exc:
            # A 5xx after the body was taken may still have made a task (PROVIDERS §1.5).
            if exc.kind is UpstreamKind.RETRYABLE and not request.idempotent:
                raise SubmitOutcomeUnknown(
                    f"create answered {exc.upstream_status}: outcome unknown"
                ) from exc
            raise
        try:
            return adapter.parse_submit(job, reply)
        except UpstreamError as exc:
            # A 2xx we cannot read: a task may exist upstream all the same.
            raise SubmitOutcomeUnknown(f"unreadable create reply: {exc.message}") from exc

    async def recover(
        self, adapter: TaskAdapter, channel: Channel, job: TaskJob, key_index: int = 0
    ) -> Submitted | None:
        """The upstream task a create of unknown outcome made, or None if there is certainly
        none. Raises UpstreamError when recovery is impossible now (retry later) and
        LookupError when the adapter has no way to recover at all."""
        ctx = self.context(adapter, channel, key_index)
        request = adapter.recover_request(ctx, job)
        if request is None:
            raise LookupError(f"{adapter.name} cannot look up a lost create")
        reply = await self.call(adapter, ctx, request, op="recover")
        return adapter.parse_recover(job, reply)

    async def poll(
        self, adapter: TaskAdapter, channel: Channel, ref: TaskRef, key_index: int = 0
    ) -> PollResult:
        ctx = self.context(adapter, channel, key_index)
        reply = await self.call(adapter, ctx, adapter.poll_request(ctx, ref), op="poll")
        result = adapter.parse_poll(ref, reply)
        if result.outputs and any(o.fetch is not None for o in result.outputs):
            outputs = [await self._download(adapter, ctx, o) for o in result.outputs]
            result = dataclasses.replace(result, outputs=outputs)
        return result

    async def _download(
        self, adapter: TaskAdapter, ctx: CallContext, output: TaskOutput
    ) -> TaskOutput:
        if output.fetch is None:
            return output
        fetch = output.fetch
        if "://" not in fetch.url:
            fetch = dataclasses.replace(fetch, url=join_url(ctx.base_url, fetch.url))
        reply = await self.call(
            adapter,
            ctx,
            fetch,
            op="download",
            deadline=self._download_timeout,
            max_bytes=MAX_DOWNLOAD_BYTES,
        )
        ctype = reply.headers.get("content-type", output.content_type).split(";")[0].strip()
        return dataclasses.replace(output, data=reply.body, fetch=None, content_type=ctype)

    async def cancel(
        self, adapter: TaskAdapter, channel: Channel, ref: TaskRef, key_index: int = 0
    ) -> bool:
        """Best effort: False where the upstream cannot cancel or refused."""
        ctx = self.context(adapter, channel, key_index)
        request = adapter.cancel_request(ctx, ref)
        if request is None:
            return False
        try:
            await self.call(adapter, ctx, request, op="cancel")
        except UpstreamError:
            return False
        return True


__all__ = ["MediaInput", "SubmitOutcomeUnknown", "TaskExecutor"]
