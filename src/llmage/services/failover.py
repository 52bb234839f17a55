"""Chat failover: try the candidate channels in routing order until one answers, within the
request's one deadline, while nothing has reached the client.

Per attempt: the channel's breaker must let it through (services/channel_health.py), a chat
slot must be free when the channel limits chat concurrency, and a pool channel signs with the
next key of its rotation. An error moves on when it is worth another try:
  - a key problem (auth, upstream balance) on a pool: the same channel with its next key, the
    failing key set aside;
  - a retryable error (connect failure, 5xx, 429) or a channel problem (auth, model not
    enabled, upstream balance): the next channel;
  - a timeout of the attempt's own deadline (channel option `timeout_seconds`) while the
    request still has time: the next channel. The abandoned upstream call may still be billed
    to our account; never to the user, who pays only for the answer relayed.
Anything else (the user's own bad request, the request's deadline) is final. When every
candidate is at its concurrency limit, the request waits up to `wait` seconds for a slot, then
gets a 429 with Retry-After.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from llmage.domain.errors import LlmageError, RateLimited, ServiceUnavailable, UpstreamError
from llmage.domain.errors import UpstreamKind as K
from llmage.observability import metrics
from llmage.providers.contract import Channel
from llmage.services.channel_health import ChannelHealth, _number

T = TypeVar("T")

# One attempt: (the channel narrowed to the key it signs with, attempt deadline) -> result.
Attempt = Callable[[Channel, float], Awaitable[T]]


def _noop() -> None:
    return None


class Failover:
    def __init__(self, health: ChannelHealth, *, wait: float = 5.0) -> None:
        self.health = health
        self.wait = wait  # seconds a request may wait for a chat slot before its 429

    async def run(
        self,
        channels: list[Channel],
        attempt: Attempt[T],
        *,
        deadline: float,
        op: str,
        usable: Callable[[Channel], bool] = lambda ch: True,
        chosen: Callable[[Channel], None] = lambda ch: None,
    ) -> tuple[T, Channel, Callable[[], None]]:
        """(result, channel, release): `release` frees the chat slot the call holds (call it
        once the answer, stream included, is over). `chosen` is told each channel tried."""
        last: LlmageError | None = None
        busy: list[tuple[Channel, asyncio.Semaphore]] = []
        for channel in self.health.route(channels):
            if not usable(channel):
                self.health.breaker(channel).neutral(self.health.clock())
                continue
            slots = self.health.chat_slots(channel)
            if slots is not None and slots.locked():
                self.health.breaker(channel).neutral(self.health.clock())
                busy.append((channel, slots))
                continue
            if slots is not None:
                await slots.acquire()  # free: returns at once
            try:
                return await self._one(channel, attempt, deadline, op, chosen, slots)
            except _Next as nxt:
                last = nxt.error
        for channel, slots in busy[:1]:
            # Every candidate worth trying is full: wait a bounded time for the first one.
            wait = min(self.wait, deadline - time.monotonic())
            try:
                await asyncio.wait_for(slots.acquire(), max(0.0, wait))
            except TimeoutError:
                metrics.CHANNEL_CALLS.labels(channel.name, op, "queue_full").inc()
                raise RateLimited(
                    f"Upstream channels for this model are at their concurrency limit; "
                    f"retry in {max(1, math.ceil(self.wait))} s",
                    kind="requests",
                    headers={"Retry-After": str(max(1, math.ceil(self.wait)))},
                ) from None
            if not self.health.breaker(channel).acquire(self.health.clock()):
                self.health.breaker(channel).force(self.health.clock())
            try:
                return await self._one(channel, attempt, deadline, op, chosen, slots)
            except _Next as nxt:
                last = nxt.error
        raise last or ServiceUnavailable("No provider can serve this channel")

    async def _one(
        self,
        channel: Channel,
        attempt: Attempt[T],
        deadline: float,
        op: str,
        chosen: Callable[[Channel], None],
        slots: asyncio.Semaphore | None,
    ) -> tuple[T, Channel, Callable[[], None]]:
        """Attempts on one channel (several keys of a pool). Raises _Next to fail over."""
        release = slots.release if slots is not None else _noop
        tried: frozenset[int] = frozenset()
        last: UpstreamError | None = None
        try:
            while True:
                index = self.health.pick_key(channel, tried)
                if index is None:
                    if last is not None:  # every key of the pool failed: the channel did
                        self.health.record(channel, last.kind)
                    raise _Next(last)
                tried |= {index}
                chosen(channel)
                cap = _number(channel.options, "timeout_seconds", 0.0)
                own = time.monotonic() + cap if cap else deadline
                started = time.perf_counter()
                try:
                    result = await attempt(self.health.with_key(channel, index), min(own, deadline))
                except UpstreamError as exc:
                    exc.redact(channel.redact)
                    outcome = exc.kind.value
                    metrics.UPSTREAM_ERRORS.labels(channel.provider, outcome).inc()
                    metrics.CHANNEL_CALLS.labels(channel.name, op, outcome).inc()
                    if exc.kind.key_problem and self.health.usable_keys(channel) > 1:
                        self.health.set_aside(channel, index)
                        last = exc
                        continue  # the same channel, its next key
                    self.health.record(channel, exc.kind)
                    if exc.retryable or (
                        exc.kind is K.TIMEOUT and own < deadline and time.monotonic() < deadline
                    ):
                        raise _Next(exc) from exc
                    raise
                metrics.CHANNEL_CALLS.labels(channel.name, op, "ok").inc()
                metrics.CHANNEL_LATENCY.labels(channel.name, op).observe(
                    time.perf_counter() - started
                )
                self.health.record(channel, None)
                return result, channel, release
        except (_Next, LlmageError):
            release()
            raise
        except BaseException:
            # Cancelled (the client left) or a bug: a probe this call held is handed back.
            release()
            self.health.breaker(channel).neutral(self.health.clock())
            raise


class _Next(Exception):
    def __init__(self, error: LlmageError | None) -> None:
        super().__init__("fail over")
        self.error = error
