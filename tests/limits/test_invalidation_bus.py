"""Cache invalidation: alone, a change is applied in-process at once; with Redis, another
instance applies it as soon as the pub/sub message arrives, and a lost subscription shortens
the caches' lifetimes until it is back."""

from __future__ import annotations

import asyncio
import secrets

from test_redis_limits import REDIS_URL, closed_port, redis  # noqa: F401 - fixture

from llmage.net.resp import Redis
from llmage.services.invalidation import CHANNELS, KEYS, InvalidationBus


async def test_alone_a_change_applies_at_once() -> None:
    bus = InvalidationBus()
    seen: list[str] = []
    bus.on(KEYS, lambda: seen.append("keys"))
    bus.on(CHANNELS, lambda: seen.append("channels"))
    await bus.publish(KEYS)
    assert seen == ["keys"]
    assert bus.connected


async def test_another_instance_hears_a_change(redis: Redis) -> None:  # noqa: F811
    prefix = f"t-{secrets.token_hex(4)}:"
    here = InvalidationBus(Redis(REDIS_URL), REDIS_URL, prefix)
    there = InvalidationBus(Redis(REDIS_URL), REDIS_URL, prefix)
    heard = asyncio.Event()
    up = asyncio.Event()
    there.on(CHANNELS, heard.set)
    there.on_state(lambda connected: up.set() if connected else None)
    await there.start()
    try:
        await asyncio.wait_for(up.wait(), 10)
        await here.publish(CHANNELS)
        await asyncio.wait_for(heard.wait(), 5)
    finally:
        await there.close()


async def test_no_redis_means_uninformed() -> None:
    url = f"redis://127.0.0.1:{closed_port()}/0"
    bus = InvalidationBus(Redis(url, timeout=0.2), url, "x:")
    assert not bus.connected
    await bus.publish(KEYS)  # still applied here, and does not raise
    await bus.close()
