"""An admin's model change reaches every instance: written on one, announced with the CATALOG
topic through Redis, applied by the other from the database; and a restarted instance starts
with the overrides in force."""

from __future__ import annotations

import asyncio
import secrets
from pathlib import Path

from test_redis_limits import REDIS_URL, redis  # noqa: F401 - fixture

from conftest import make_settings
from llmage.domain.catalog import MediaPrice
from llmage.net.resp import Redis
from llmage.services.platform import Platform

HAPPYHORSE = "o5vfXYD5BURJWRTWpopE5"


def rate(p: Platform, resolution: str) -> int | None:
    entry = p.catalog.by_llmid(HAPPYHORSE)
    if entry is None:
        return None
    assert isinstance(entry.price, MediaPrice)
    return entry.price.rates[resolution]


async def until(check: object, timeout: float = 10) -> None:
    async def wait() -> None:
        while not check():  # type: ignore[operator]
            await asyncio.sleep(0.01)

    await asyncio.wait_for(wait(), timeout)


async def test_a_price_change_reaches_the_other_instance(
    tmp_path: Path,
    redis: Redis,  # noqa: F811
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'shared.db'}"
    prefix = f"t-{secrets.token_hex(4)}:"
    settings = make_settings(tmp_path, url, redis_url=REDIS_URL, redis_prefix=prefix)
    here, there = Platform(settings), Platform(settings)
    await here.start()
    await there.start(serve=True)
    try:
        await until(lambda: there.bus.connected)
        uid = await here.accounts.create_user("boss", "x" * 60, role="admin")
        await here.model_admin.update(HAPPYHORSE, admin_id=uid, price={"rates": {"720p": 7}})
        assert rate(here, "720p") == 7  # at once where it was made
        await until(lambda: rate(there, "720p") == 7)
        await here.model_admin.update(HAPPYHORSE, admin_id=uid, enabled=False)
        await until(lambda: rate(there, "720p") is None)
        assert there.catalog.any_by_llmid(HAPPYHORSE) is not None  # running tasks still settle
    finally:
        await there.close()
        await here.close()
    again = Platform(settings)
    await again.start()
    try:
        assert again.catalog.by_llmid(HAPPYHORSE) is None
        assert again.catalog.any_by_llmid(HAPPYHORSE) is not None
        entry = again.catalog.any_by_llmid(HAPPYHORSE)
        assert entry is not None and isinstance(entry.price, MediaPrice)
        assert entry.price.rates["720p"] == 7
    finally:
        await again.close()
