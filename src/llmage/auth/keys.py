"""API keys: `sk-` + 48 random characters, shown once, stored as SHA-256.

SHA-256 rather than Argon2 for keys: they carry ~285 bits of entropy, so a slow hash buys nothing
and would cost milliseconds on every request. The per-request lookup is cached in memory; the
cache only answers "who is this", while revocation, expiry and spend limits are re-checked inside
the hold transaction, so a stale cache entry cannot spend.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable

from llmage.db.repos.accounts import AccountRepo
from llmage.domain.errors import InvalidApiKey
from llmage.domain.principal import KeyAuth

_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"


def generate_key() -> str:
    return "sk-" + "".join(secrets.choice(_ALPHABET) for _ in range(48))


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def key_prefix(key: str) -> str:
    """What lists may show: enough to recognise a key, useless to an attacker."""
    return f"{key[:7]}…{key[-4:]}"


class KeyCache:
    def __init__(
        self,
        repo: AccountRepo,
        ttl: float,
        max_entries: int = 50_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._repo = repo
        self.clock = clock  # when cached entries expire; replaceable so tests need no timers
        self.ttl = ttl  # the platform shortens it while cross-instance invalidation is down
        self._max = max_entries
        self._entries: OrderedDict[str, tuple[float, KeyAuth | None]] = OrderedDict()

    async def authenticate(self, authorization: str | None) -> KeyAuth:
        if not authorization:
            raise InvalidApiKey()
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.startswith("sk-"):
            raise InvalidApiKey()
        digest = hash_key(token.strip())
        now = self.clock()
        hit = self._entries.get(digest)
        if hit is not None and hit[0] > now:
            auth = hit[1]
        else:
            auth = await self._repo.key_auth(digest, int(time.time() * 1000))
            # Unknown keys are cached too (briefly), so a flood of bad keys cannot flood the DB.
            self._entries[digest] = (now + (self.ttl if auth else min(self.ttl, 2.0)), auth)
            if len(self._entries) > self._max:
                self._entries.popitem(last=False)
        if auth is None or (auth.expires_at is not None and auth.expires_at <= time.time() * 1000):
            raise InvalidApiKey()
        return auth

    def invalidate(self) -> None:
        self._entries.clear()
