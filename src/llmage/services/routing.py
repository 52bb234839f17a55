"""Which channels may serve a request, in the order to try them.

Channels are read from the database at most every `ttl` seconds (one query, shared by all
requests); credentials are decrypted once per reload, not per request.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Iterable

from llmage.auth.crypto import CredentialBox
from llmage.db.repos.channels import ChannelRepo, ChannelRow
from llmage.domain.credentials import load_secret
from llmage.domain.redaction import Redactor, redactor
from llmage.providers.contract import Channel
from llmage.services.channel_health import ChannelHealth

log = logging.getLogger(__name__)


def order_channels(channels: Iterable[Channel], rng: random.Random) -> list[Channel]:
    """Highest priority first; inside one priority, a weighted random order (failover order)."""
    by_priority: dict[int, list[Channel]] = {}
    for ch in channels:
        by_priority.setdefault(ch.priority, []).append(ch)
    ordered: list[Channel] = []
    for prio in sorted(by_priority, reverse=True):
        group = by_priority[prio]
        # Efraimidis–Spirakis: key = u^(1/w), sorted descending, is a weighted shuffle.
        ordered.extend(
            sorted(group, key=lambda c: rng.random() ** (1.0 / max(c.weight, 1)), reverse=True)
        )
    return ordered


class ChannelDirectory:
    def __init__(
        self,
        repo: ChannelRepo,
        box: CredentialBox,
        ttl: float,
        health: ChannelHealth | None = None,
    ) -> None:
        self._repo = repo
        # Breakers, key rotation and chat slots of this process (services/channel_health.py).
        self.health = health or ChannelHealth()
        self._box = box
        self.ttl = ttl  # the platform shortens it while cross-instance invalidation is down
        self._channels: list[Channel] = []
        self._expires = 0.0
        self._lock = asyncio.Lock()
        self._rng = random.Random()
        self._by_id: dict[int, Channel] = {}
        self._matches: dict[tuple[frozenset[str], str | None], list[Channel]] = {}

    def _decrypt(self, row: ChannelRow) -> Channel | None:
        try:
            creds = (
                load_secret(row.credential_type, self._box.open(row.credential_enc))
                if row.credential_enc
                else None
            )
        except ValueError:
            log.error("channel %s: credential cannot be read; channel skipped", row.name)
            return None
        return Channel(
            id=row.id,
            name=row.name,
            provider=row.provider,
            platform=row.platform,
            base_url=row.base_url,
            credentials=creds,
            models=frozenset(row.models),
            model_map=row.model_map,
            options=row.options,
            priority=row.priority,
            weight=row.weight,
        )

    async def all(self) -> list[Channel]:
        if time.monotonic() >= self._expires:
            async with self._lock:
                if time.monotonic() >= self._expires:
                    rows = await self._repo.list()
                    decrypted = {
                        r.id: (c, r.enabled) for r in rows if (c := self._decrypt(r)) is not None
                    }
                    # Disabled channels take no new work but still finish their running tasks.
                    self._by_id = {i: c for i, (c, _) in decrypted.items()}
                    self.health.sync(self._by_id.values())
                    self._channels = [c for c, enabled in decrypted.values() if enabled]
                    self._matches = {}
                    self._expires = time.monotonic() + self.ttl
        return self._channels

    def invalidate(self) -> None:
        """Reload on the next request (a channel changed here or on another instance)."""
        self._expires = 0.0

    async def by_id(self, channel_id: int) -> Channel | None:
        await self.all()
        return self._by_id.get(channel_id)

    async def candidates(
        self, names: Iterable[str], *, platform: str | None = None
    ) -> list[Channel]:
        channels = await self.all()
        key = (frozenset(names), platform)
        found = self._matches.get(key)
        if found is None:
            # Filtering is per reload, not per request: requests only reshuffle the result.
            found = [
                c
                for c in channels
                if (key[0] & c.models or "*" in c.models)
                and (platform is None or c.platform == platform)
            ]
            self._matches[key] = found
        return found if len(found) < 2 else order_channels(found, self._rng)

    async def redactor(self) -> Redactor:
        """Removes every channel's credentials and address (disabled channels' too): for
        upstream text kept where its channel is not certain, such as a task's error."""
        await self.all()
        channels = self._by_id.values()
        return redactor((s for c in channels for s in c.secrets), (c.base_url for c in channels))

    async def platforms(self) -> set[str]:
        return {c.platform for c in await self.all()}
