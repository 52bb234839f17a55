"""Console sessions: open one at login, resolve a cookie to a principal, revoke.

The cookie carries a random token; the database keeps its SHA-256 with an absolute expiry. Logout
deletes the row; a password change or reset deletes every other session of the user; disabling a
user makes their sessions stop resolving. The CSRF token is derived from the session id (see
auth/tokens.py), so it changes with every login and needs no column.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from llmage.auth.tokens import csrf_matches, csrf_token, new_session_token, session_id
from llmage.db.repos.accounts import AccountRepo
from llmage.db.repos.sessions import SessionRepo
from llmage.domain.principal import ConsoleUser, KeyAuth


@dataclass(frozen=True, slots=True)
class OpenedSession:
    token: str  # for the cookie only; never stored
    csrf: str
    expires_at: int  # epoch ms
    user: ConsoleUser


class SessionService:
    def __init__(
        self,
        repo: SessionRepo,
        accounts: AccountRepo,
        *,
        csrf_secret: bytes,
        ttl_seconds: float,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._repo = repo
        self._accounts = accounts
        self._csrf_secret = csrf_secret
        self._ttl_ms = int(ttl_seconds * 1000)
        self._clock = clock
        self._next_purge = 0

    @property
    def ttl_seconds(self) -> int:
        return self._ttl_ms // 1000

    def _now(self) -> int:
        return int(self._clock() * 1000)

    async def open(
        self, user_id: int, *, ip: str | None = None, user_agent: str | None = None
    ) -> OpenedSession:
        user = await self._accounts.user_by_id(user_id)
        if user is None:
            raise LookupError(f"no user {user_id}")
        token = new_session_token()
        sid = session_id(token)
        now = self._now()
        expires = now + self._ttl_ms
        await self._repo.create(
            sid, user_id, now=now, expires_at=expires, ip=ip, user_agent=user_agent
        )
        if now >= self._next_purge:  # expired rows go at most hourly, piggybacked on a login
            self._next_purge = now + 3_600_000
            await self._repo.purge_expired(now)
        principal = ConsoleUser(user.id, user.username, user.role, "session", session_id=sid)
        return OpenedSession(token, csrf_token(self._csrf_secret, sid), expires, principal)

    async def resolve(self, token: str) -> ConsoleUser | None:
        row = await self._repo.lookup(session_id(token), self._now())
        if row is None:
            return None
        return ConsoleUser(row.user_id, row.username, row.role, "session", session_id=row.id)

    def csrf_for(self, user: ConsoleUser) -> str | None:
        return csrf_token(self._csrf_secret, user.session_id) if user.session_id else None

    def csrf_ok(self, user: ConsoleUser, presented: str | None) -> bool:
        return user.session_id is not None and csrf_matches(
            self._csrf_secret, user.session_id, presented
        )

    async def close(self, user: ConsoleUser) -> None:
        if user.session_id:
            await self._repo.delete(user.session_id)

    async def revoke_others(self, user_id: int, keep: str | None) -> int:
        return await self._repo.delete_for_user(user_id, keep=keep)

    async def active_count(self, user_id: int) -> int:
        return await self._repo.count_for_user(user_id, self._now())

    async def purge_expired(self) -> int:
        return await self._repo.purge_expired(self._now())

    async def admin_by_key(self, auth: KeyAuth) -> ConsoleUser | None:
        """An API key's principal, role re-read from the database: the key cache may be up to
        its TTL old, and admin rights are worth one query."""
        user = await self._accounts.user_by_id(auth.user_id)
        if user is None or user.disabled:
            return None
        return ConsoleUser(user.id, user.username, user.role, "key", key_id=auth.key_id)
