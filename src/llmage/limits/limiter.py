"""The limiter services call: one check before the hold, one correction when the work ends.

A request with no limits (no key or user limits set) costs one attribute test. With limits,
the check is a few dict operations in this process, or one Redis script call when Redis is
configured. If Redis fails, the check falls back to this process at once (each instance then
counts alone: limits become per instance), logs it once, and says so in the
`llmage_limits_backend` gauge; the next check after the client's retry pause tries Redis again.
Money never depends on any of this: the hold is a separate, database-only step.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from llmage.domain.errors import RateLimited
from llmage.domain.limits import Dim, LimitPolicy, Refusal, Rule, plan, refusal_headers
from llmage.domain.principal import KeyAuth
from llmage.limits.memory import MemoryBuckets
from llmage.limits.redis_buckets import RedisBuckets
from llmage.net.resp import Redis, RedisReplyError, RedisUnavailable
from llmage.observability import metrics

log = logging.getLogger(__name__)

_PLAN_CACHE_MAX = 50_000


def refused(refusal: Refusal) -> RateLimited:
    return RateLimited(refusal.message(), kind=refusal.dim.value, headers=refusal_headers(refusal))


@dataclass(slots=True)
class Admission:
    """A request admitted past its limits; `done` must be called once when it ends."""

    limiter: Limiter
    rules: tuple[Rule, ...]
    tokens: int
    member: str
    shared: bool  # admitted by Redis (else by this process)
    ended: bool = field(default=False)

    def done(self, used_tokens: int | None = None) -> None:
        """Free concurrency slots and correct token buckets from the tokens really used
        (None: as held). Idempotent: settlement paths may overlap."""
        if self.ended:
            return
        self.ended = True
        delta = 0 if used_tokens is None else used_tokens - self.tokens
        try:
            self.limiter._end(self, delta)
        except Exception:
            # Called from settlement: whatever happens here, the money must still settle.
            log.exception("ending a limits admission failed; its slot frees with its lease")


class Limiter:
    def __init__(
        self,
        redis: Redis | None = None,
        *,
        prefix: str = "llmage:",
        lease_ms: int = 600_000,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self._memory = MemoryBuckets()
        self._redis = RedisBuckets(redis, prefix + "lim:", lease_ms) if redis else None
        self._clock = clock or (lambda: time.monotonic() * 1000)
        self._plans: dict[tuple[object, ...], tuple[Rule, ...]] = {}
        self._ids = itertools.count()
        self._instance = os.urandom(6).hex()
        self._background: set[asyncio.Future[Any]] = set()
        self.shared = self._redis is not None
        self._gauge()

    @property
    def backend(self) -> str:
        return "redis" if self.shared else "local"

    def _gauge(self) -> None:
        metrics.LIMITS_BACKEND.labels("redis").set(1 if self.shared else 0)
        metrics.LIMITS_BACKEND.labels("local").set(0 if self.shared else 1)

    def _rules(self, auth: KeyAuth, names: tuple[str, ...]) -> tuple[Rule, ...]:
        key = (auth.key_id, auth.user_id, auth.key_limits, auth.user_limits, names)
        rules = self._plans.get(key)
        if rules is None:
            subjects: list[tuple[str, LimitPolicy | None]] = [
                (f"k{auth.key_id}", auth.key_limits),
                (f"u{auth.user_id}", auth.user_limits),
            ]
            rules = plan(subjects, names)
            if len(self._plans) > _PLAN_CACHE_MAX:
                self._plans.clear()
            self._plans[key] = rules
        return rules

    async def admit(
        self,
        auth: KeyAuth,
        names: Iterable[str],
        *,
        tokens: int = 0,
        concurrent: bool = True,
    ) -> Admission | None:
        """Raises RateLimited when over a limit. `tokens`: what the hold is sized for;
        `concurrent`: the request occupies a concurrency slot until `done`."""
        if auth.key_limits is None and auth.user_limits is None:
            return None
        rules = self._rules(auth, tuple(names))
        if not concurrent:
            rules = tuple(r for r in rules if r.dim is Dim.REQUESTS)
        if not rules:
            return None
        for r in rules:
            if r.limit == 0 or (r.dim is Dim.TOKENS and tokens > r.limit):
                # No wait will help: tell clients not to retry.
                raise refused(Refusal(r.dim, r.limit, 0.0, (), retryable=False))
        member = f"{self._instance}:{next(self._ids)}"
        if self._redis is not None:
            try:
                refusal = await self._redis.acquire(rules, tokens, member)
            except (RedisUnavailable, RedisReplyError, OSError) as exc:
                self._degraded(exc)
            else:
                self._recovered()
                if refusal is not None:
                    raise refused(refusal)
                return Admission(self, rules, tokens, member, shared=True)
        refusal = self._memory.acquire(rules, tokens, self._clock())
        if refusal is not None:
            raise refused(refusal)
        return Admission(self, rules, tokens, member, shared=False)

    def _end(self, adm: Admission, token_delta: int) -> None:
        if not adm.shared:
            self._memory.settle(adm.rules, token_delta, self._clock())
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no loop (a stream finalised at shutdown): the Redis lease frees the slot
        assert self._redis is not None
        sent = self._redis.settle_soon(adm.rules, token_delta, adm.member)
        if sent is not None:  # on the wire already: no task per request to wait for the reply
            sent.add_done_callback(self._settled)
            self._background.add(sent)
            sent.add_done_callback(self._background.discard)
            return
        task = loop.create_task(self._end_shared(adm, token_delta))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _end_shared(self, adm: Admission, token_delta: int) -> None:
        assert self._redis is not None
        try:
            await self._redis.settle(adm.rules, token_delta, adm.member)
        except (RedisUnavailable, RedisReplyError, OSError) as exc:
            # Lost with Redis: the slot's lease frees it; a token correction is forgone.
            self._degraded(exc)

    def _settled(self, fut: asyncio.Future[Any]) -> None:
        if fut.cancelled():
            return
        exc = fut.exception()
        if isinstance(exc, (RedisUnavailable, RedisReplyError, OSError)):
            # Lost with Redis: the slot's lease frees it; a token correction is forgone.
            self._degraded(exc)
        elif exc is not None:
            log.error("ending a limits admission in Redis failed: %r", exc)

    def _degraded(self, exc: BaseException) -> None:
        if self.shared:
            self.shared = False
            self._gauge()
            log.warning(
                "limits: Redis unavailable (%r); counting in this process until it is back", exc
            )

    def _recovered(self) -> None:
        if not self.shared:
            self.shared = True
            self._gauge()
            log.warning("limits: Redis is back; limits are shared again")

    async def close(self) -> None:
        if self._background:
            await asyncio.wait(self._background, timeout=2)
