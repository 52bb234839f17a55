"""Cache invalidation: alone, a change is applied in-process at once; with Redis, another
instance applies it as soon as the pub/sub message arrives, and a lost subscription shortens
the caches' lifetimes until it is back."""

from __future__ import annotations

import asyncio
import json
import secrets
from pathlib import Path

from test_redis_limits import REDIS_URL, closed_port, redis  # noqa: F401 - fixture

from conftest import make_settings
from llmage import catalog as catalog_pkg
from llmage.domain.catalog import ChatPrice
from llmage.domain.chat import parse_chat_body
from llmage.net.resp import Redis
from llmage.services.invalidation import CATALOG, CHANNELS, KEYS, InvalidationBus
from llmage.services.platform import Platform


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


async def test_a_price_change_applies_to_the_next_request(tmp_path: Path) -> None:
    """`reload-catalog` announces CATALOG: each instance re-reads its catalog in place, so the
    services holding it price the next request with the new price."""
    data = json.loads((Path(catalog_pkg.__file__).parent / "models.json").read_text())
    path = tmp_path / "catalog.json"
    path.write_text(json.dumps(data))
    settings = make_settings(
        tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'c.db'}", catalog_file=path
    )
    platform = Platform(settings)
    await platform.start()
    try:
        req = parse_chat_body(
            {"model": "deepseek-chat", "messages": [{"role": "user", "content": "x"}]}
        )
        found = platform.catalog.chat_model("deepseek-chat")
        assert found is not None and isinstance(found[0].price, ChatPrice)
        before = platform.chat.quote(req, found[0], found[0].price)
        for m in data["models"]:
            if "deepseek-chat" in m["names"]:
                m["price"] = {k: v * 2 for k, v in m["price"].items()}
        path.write_text(json.dumps(data))
        await platform.invalidate(CATALOG)
        found = platform.catalog.chat_model("deepseek-chat")
        assert found is not None and isinstance(found[0].price, ChatPrice)
        assert platform.chat.quote(req, found[0], found[0].price) == 2 * before
        path.write_text("{broken")  # a broken file keeps the catalog in use
        await platform.invalidate(CATALOG)
        assert platform.catalog.chat_model("deepseek-chat") is not None
    finally:
        await platform.close()
