"""Limit buckets shared by every instance through Redis: one script call per check.

The scripts mirror limits/memory.py over the same math (domain/limits.py): rpm and tpm buckets
are one number each (the GCRA TAT, milliseconds, Redis time so instance clocks do not matter),
concurrency buckets a sorted set of in-flight request ids scored by their lease expiry, so the
slots of a request whose instance died free themselves when the lease runs out. Every bucket
of a request is checked first and written only if all admit it: one atomic round trip.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from llmage.domain.limits import BucketState, Dim, Refusal, Rule
from llmage.net.resp import Redis, Script

_KIND = {Dim.REQUESTS: "r", Dim.TOKENS: "t", Dim.CONCURRENCY: "c"}

_NOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
local P = 60000
"""

ACQUIRE = Script(
    _NOW
    + """
local member, lease, tokens = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
local out = {0, 0}
local news = {}
local refused, wait = 0, -1
for i = 1, #KEYS do
  local kind, limit = ARGV[2 + 2 * i], tonumber(ARGV[3 + 2 * i])
  if kind == 'c' then
    redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now)
    local count = redis.call('ZCARD', KEYS[i])
    local rem = limit - count
    if count >= limit and wait < 1000 then refused, wait = i, 1000 end
    if rem < 0 then rem = 0 end
    out[#out + 1] = rem
    out[#out + 1] = 0
  else
    local cost = 1
    if kind == 't' then cost = tokens end
    local T = P / limit
    local tat = tonumber(redis.call('GET', KEYS[i]) or '0')
    local base = tat
    if base < now then base = now end
    local new = base + cost * T
    if new - now <= P then
      news[i] = new
    elseif new - now - P > wait then
      refused, wait = i, new - now - P
    end
    -- What a refusal reports: the bucket as it is (states are only read on refusal).
    local used = tat - now
    if used < 0 then used = 0 end
    local rem = math.floor((P - used) / T + 1e-9)
    if rem > limit then rem = limit end
    out[#out + 1] = rem
    out[#out + 1] = math.ceil(used)
  end
end
if refused == 0 then
  for i = 1, #KEYS do
    if news[i] then
      redis.call('SET', KEYS[i], tostring(news[i]), 'PX', math.ceil(news[i] - now) + 1000)
    elseif ARGV[2 + 2 * i] == 'c' then
      redis.call('ZADD', KEYS[i], now + lease, member)
      redis.call('PEXPIRE', KEYS[i], lease + 1000)
    end
  end
end
out[1] = refused
out[2] = math.ceil(wait)
return out
"""
)

SETTLE = Script(
    _NOW
    + """
local member, delta = ARGV[1], tonumber(ARGV[2])
for i = 1, #KEYS do
  local kind, limit = ARGV[1 + 2 * i], tonumber(ARGV[2 + 2 * i])
  if kind == 'c' then
    redis.call('ZREM', KEYS[i], member)
  elseif kind == 't' and delta ~= 0 then
    local tat = tonumber(redis.call('GET', KEYS[i]) or '0')
    if delta > 0 and tat < now then tat = now end
    local new = tat + delta * P / limit
    if new > now then
      redis.call('SET', KEYS[i], tostring(new), 'PX', math.ceil(new - now) + 1000)
    else
      redis.call('DEL', KEYS[i])
    end
  end
end
return 1
"""
)


class RedisBuckets:
    def __init__(self, redis: Redis, prefix: str, lease_ms: int) -> None:
        self._redis = redis
        self._prefix = prefix
        self._lease = lease_ms

    def _args(self, rules: Sequence[Rule]) -> tuple[list[str], list[str | int]]:
        keys = [self._prefix + r.bucket for r in rules]
        args: list[str | int] = []
        for r in rules:
            args += (_KIND[r.dim], r.limit)
        return keys, args

    async def acquire(self, rules: Sequence[Rule], tokens: int, member: str) -> Refusal | None:
        keys, args = self._args(rules)
        out = await self._redis.evalsha(ACQUIRE, keys, [member, self._lease, tokens, *args])
        refused, wait = int(out[0]), float(out[1])
        if not refused:
            return None
        states = tuple(
            BucketState(r.dim, r.limit, int(out[2 + 2 * i]), float(out[3 + 2 * i]))
            for i, r in enumerate(rules)
        )
        rule = rules[refused - 1]
        return Refusal(rule.dim, rule.limit, wait, states)

    def _settle_args(
        self, rules: Sequence[Rule], token_delta: int, member: str
    ) -> tuple[list[str], list[str | int]] | None:
        used = [
            r for r in rules if r.dim is Dim.CONCURRENCY or (r.dim is Dim.TOKENS and token_delta)
        ]
        if not used:
            return None
        keys, args = self._args(used)
        return keys, [member, token_delta, *args]

    async def settle(self, rules: Sequence[Rule], token_delta: int, member: str) -> None:
        found = self._settle_args(rules, token_delta, member)
        if found is not None:
            await self._redis.evalsha(SETTLE, *found)

    def settle_soon(
        self, rules: Sequence[Rule], token_delta: int, member: str
    ) -> asyncio.Future[Any] | None:
        """`settle`, sent now with no task: None when there is nothing to send or no live
        connection (then the caller awaits `settle`, which connects)."""
        found = self._settle_args(rules, token_delta, member)
        if found is None:
            return None
        return self._redis.evalsha_soon(SETTLE, *found)
