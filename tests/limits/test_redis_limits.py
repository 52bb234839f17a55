"""The Redis buckets (one script call per check) against the local Redis server, and the
limiter's fallback to the process when Redis cannot be reached."""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
from collections.abc import AsyncIterator

import pytest

from llmage.domain.errors import RateLimited
from llmage.domain.limits import Dim, LimitPolicy, Limits, Rule
from llmage.domain.principal import KeyAuth
from llmage.limits.limiter import Limiter
from llmage.limits.redis_buckets import RedisBuckets
from llmage.net.resp import Redis, RedisUnavailable
from llmage.observability import metrics

REDIS_URL = os.environ.get("LLMAGE_TEST_REDIS", "redis://127.0.0.1:6379/0")


async def _redis_up() -> bool:
    r = Redis(REDIS_URL)
    try:
        return await r.execute("PING") == b"PONG"
    except RedisUnavailable:
        return False
    finally:
        await r.close()


@pytest.fixture
async def redis() -> AsyncIterator[Redis]:
    if not await _redis_up():
        if os.environ.get("CI"):
            pytest.fail(f"Redis not reachable at {REDIS_URL}")
        pytest.skip(f"Redis not reachable at {REDIS_URL}")
    r = Redis(REDIS_URL)
    yield r
    await r.close()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def auth(**limits: int) -> KeyAuth:
    return KeyAuth(
        key_id=1,
        user_id=2,
        username="u",
        role="user",
        models=None,
        expires_at=None,
        key_limits=LimitPolicy(Limits(**limits)),
    )


def gauge(backend: str) -> float:
    value = metrics.REGISTRY.get_sample_value("llmage_limits_backend", {"backend": backend})
    assert value is not None
    return value


async def test_script_counts_requests_and_tokens_atomically(redis: Redis) -> None:
    prefix = f"t-{secrets.token_hex(4)}:"
    buckets = RedisBuckets(redis, prefix, lease_ms=60_000)
    rules = (Rule("k:rpm", Dim.REQUESTS, 5), Rule("k:tpm", Dim.TOKENS, 1000))
    results = await asyncio.gather(*(buckets.acquire(rules, 100, f"m{i}") for i in range(20)))
    assert sum(r is None for r in results) == 5
    refusal = next(r for r in results if r is not None)
    assert refusal.dim is Dim.REQUESTS and refusal.limit == 5
    assert 11_000 < refusal.retry_after_ms <= 12_000
    states = {s.dim: s for s in refusal.states}
    assert states[Dim.REQUESTS].remaining == 0
    assert states[Dim.TOKENS].remaining == 500
    # A token correction gives back what the requests did not use.
    await buckets.settle(rules, -100, "m0")
    assert float(await redis.execute("GET", prefix + "k:tpm")) - 0 > 0
    await redis.execute("DEL", prefix + "k:rpm", prefix + "k:tpm")


async def test_concurrency_slots_are_leases(redis: Redis) -> None:
    prefix = f"t-{secrets.token_hex(4)}:"
    buckets = RedisBuckets(redis, prefix, lease_ms=60_000)
    rules = (Rule("u:concurrency", Dim.CONCURRENCY, 2),)
    assert await buckets.acquire(rules, 0, "a") is None
    assert await buckets.acquire(rules, 0, "b") is None
    refusal = await buckets.acquire(rules, 0, "c")
    assert refusal is not None and refusal.dim is Dim.CONCURRENCY
    await buckets.settle(rules, 0, "a")
    assert await buckets.acquire(rules, 0, "c") is None
    # A slot whose instance died frees itself when its lease ends.
    short = RedisBuckets(redis, prefix, lease_ms=1)
    rules2 = (Rule("u2:concurrency", Dim.CONCURRENCY, 1),)
    assert await short.acquire(rules2, 0, "dead") is None
    for _ in range(200):
        if await short.acquire(rules2, 0, "next") is None:
            break
        await asyncio.sleep(0.005)
    else:
        pytest.fail("an expired lease kept its slot")
    await redis.execute("DEL", prefix + "u:concurrency", prefix + "u2:concurrency")


async def test_limiter_shared_then_local_when_redis_is_gone(redis: Redis) -> None:
    limiter = Limiter(redis, prefix=f"t-{secrets.token_hex(4)}:")
    a = auth(rpm=2)
    assert await limiter.admit(a, ("m",)) is not None
    assert gauge("redis") == 1 and gauge("local") == 0
    dead = Redis(f"redis://127.0.0.1:{closed_port()}/0", timeout=0.2)
    fallback = Limiter(dead)
    adm = await fallback.admit(a, ("m",))
    assert adm is not None and not adm.shared
    assert gauge("local") == 1 and gauge("redis") == 0
    await fallback.admit(a, ("m",))
    with pytest.raises(RateLimited) as info:
        await fallback.admit(a, ("m",))  # the same limit, counted in the process
    assert info.value.status == 429 and info.value.headers
    assert info.value.headers["x-ratelimit-limit-requests"] == "2"
    await dead.close()


async def test_zero_and_oversized_requests_are_not_retryable() -> None:
    limiter = Limiter()
    with pytest.raises(RateLimited) as info:
        await limiter.admit(auth(rpm=0), ("m",))
    assert info.value.headers == {"x-should-retry": "false"}
    with pytest.raises(RateLimited) as info:
        await limiter.admit(auth(tpm=100), ("m",), tokens=101)
    assert "cannot fit" in info.value.message
    assert await limiter.admit(auth(), ("m",)) is None  # no limit set: nothing to count
