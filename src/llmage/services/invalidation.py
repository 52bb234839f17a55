"""Changes reach every instance at once: cache invalidation by topic.

Caches keep hot reads off the database (the key cache, the channel directory). A change (a
revoked key, a disabled user, new limits, a channel switched off, new prices) is announced with
`publish(topic)`: this process drops its caches of that topic immediately and, with Redis, every
other instance (and the servers, when the change came from a CLI process) does on the pub/sub
message, milliseconds later. A subscriber that loses its connection may miss messages: it drops
every cache when it is back, and while it is down the platform shortens cache lifetimes to a
second (`on_state`), so a change is never applied later than that. Nothing here is money: the
hold itself re-checks a key's revocation and expiry in the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable

from llmage.net.resp import Redis, RedisReplyError, RedisUnavailable, Subscriber
from llmage.observability import metrics

log = logging.getLogger(__name__)

KEYS = "keys"  # API keys, users (disabled, role), limits
CHANNELS = "channels"
CATALOG = "catalog"  # models and prices

Handler = Callable[[], None]


class InvalidationBus:
    def __init__(
        self, redis: Redis | None = None, url: str | None = None, prefix: str = ""
    ) -> None:
        self._redis = redis
        self._url = url
        self._channel = f"{prefix}invalidate"
        self._instance = os.urandom(6).hex()
        self._handlers: dict[str, list[Handler]] = {}
        self._state_handlers: list[Callable[[bool], None]] = []
        self._task: asyncio.Task[None] | None = None
        self.connected = redis is None  # alone, a process is always up to date with itself
        metrics.INVALIDATION.set(1 if self.connected else 0)

    def on(self, topic: str, handler: Handler) -> None:
        self._handlers.setdefault(topic, []).append(handler)

    def on_state(self, handler: Callable[[bool], None]) -> None:
        """handler(connected): told when the subscription to other instances drops or returns."""
        self._state_handlers.append(handler)

    def _apply(self, topic: str) -> None:
        for handler in self._handlers.get(topic, ()):
            try:
                handler()
            except Exception:
                log.exception("invalidation handler for %s failed", topic)

    def _apply_all(self) -> None:
        for topic in list(self._handlers):
            self._apply(topic)

    async def publish(self, topic: str) -> None:
        self._apply(topic)
        if self._redis is None:
            return
        try:
            await self._redis.execute("PUBLISH", self._channel, f"{self._instance}:{topic}")
        except (RedisUnavailable, RedisReplyError, OSError) as exc:
            # Other instances then see the change when their caches expire (one second while
            # their own subscription is down, their normal lifetime otherwise).
            log.warning("could not announce a %s change through Redis (%r)", topic, exc)

    def _set_connected(self, connected: bool) -> None:
        if connected == self.connected:
            return
        self.connected = connected
        metrics.INVALIDATION.set(1 if connected else 0)
        for handler in self._state_handlers:
            handler(connected)

    async def start(self) -> None:
        if self._url is not None and self._redis is not None:
            self._task = asyncio.create_task(self._listen(self._url), name="invalidation")

    async def _listen(self, url: str) -> None:
        async for event, data in Subscriber(url, self._channel).events():
            if event == "message":
                sender, _, topic = data.decode(errors="replace").partition(":")
                if sender != self._instance:
                    self._apply(topic)
            elif event == "up":
                self._apply_all()  # whatever changed while we were not listening
                self._set_connected(True)
            else:
                self._set_connected(False)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
