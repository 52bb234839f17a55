"""Console sessions: one row per logged-in browser, keyed by the SHA-256 of its cookie token.

Revocation is a DELETE: the next request with that cookie finds no row. A disabled user's
sessions stop resolving at once (the lookup joins `users.disabled`).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from llmage.db.tables import console_sessions, users


@dataclass(frozen=True, slots=True)
class SessionRow:
    id: str
    user_id: int
    username: str
    role: str
    created_at: int
    expires_at: int


class SessionRepo:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def create(
        self,
        session_id: str,
        user_id: int,
        *,
        now: int,
        expires_at: int,
        ip: str | None,
        user_agent: str | None,
    ) -> None:
        async with self._engine.begin() as conn:
            await conn.execute(
                insert(console_sessions).values(
                    id=session_id,
                    user_id=user_id,
                    created_at=now,
                    expires_at=expires_at,
                    ip=ip[:64] if ip else None,
                    user_agent=user_agent[:256] if user_agent else None,
                )
            )

    async def lookup(self, session_id: str, now: int) -> SessionRow | None:
        q = (
            select(
                console_sessions.c.id,
                console_sessions.c.user_id,
                console_sessions.c.created_at,
                console_sessions.c.expires_at,
                users.c.username,
                users.c.role,
            )
            .join(users, users.c.id == console_sessions.c.user_id)
            .where(
                console_sessions.c.id == session_id,
                console_sessions.c.expires_at > now,
                users.c.disabled.is_(False),
            )
        )
        async with self._engine.connect() as conn:
            row = (await conn.execute(q)).first()
        if row is None:
            return None
        return SessionRow(
            id=row.id,
            user_id=row.user_id,
            username=row.username,
            role=row.role,
            created_at=row.created_at,
            expires_at=row.expires_at,
        )

    async def delete(self, session_id: str) -> bool:
        async with self._engine.begin() as conn:
            res = await conn.execute(
                delete(console_sessions).where(console_sessions.c.id == session_id)
            )
        return bool(res.rowcount)

    async def delete_for_user(self, user_id: int, *, keep: str | None = None) -> int:
        """End every session of a user (but `keep`, the one changing the password)."""
        q = delete(console_sessions).where(console_sessions.c.user_id == user_id)
        if keep is not None:
            q = q.where(console_sessions.c.id != keep)
        async with self._engine.begin() as conn:
            res = await conn.execute(q)
        return int(res.rowcount or 0)

    async def count_for_user(self, user_id: int, now: int) -> int:
        q = select(console_sessions.c.id).where(
            console_sessions.c.user_id == user_id, console_sessions.c.expires_at > now
        )
        async with self._engine.connect() as conn:
            return len((await conn.execute(q)).all())

    async def purge_expired(self, now: int) -> int:
        async with self._engine.begin() as conn:
            res = await conn.execute(
                delete(console_sessions).where(console_sessions.c.expires_at <= now)
            )
        return int(res.rowcount or 0)
