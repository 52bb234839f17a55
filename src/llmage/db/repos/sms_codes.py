"""SMS verification codes: stored as an HMAC, expiring, burnt after a few wrong guesses.

A new code for a phone and purpose supersedes the older ones (they are marked consumed), so at
most one code is ever guessable. Checking a guess is one transaction: the right code is consumed
by a conditional update (two concurrent right guesses: one wins), a wrong one counts an attempt.
"""

from __future__ import annotations

import hmac

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from llmage.db.tables import sms_codes


class SmsCodeRepo:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def add(
        self, phone: str, purpose: str, code_hash: str, *, now: int, expires_at: int
    ) -> int:
        async with self._engine.begin() as conn:
            await conn.execute(
                update(sms_codes)
                .where(
                    sms_codes.c.phone == phone,
                    sms_codes.c.purpose == purpose,
                    sms_codes.c.consumed_at.is_(None),
                )
                .values(consumed_at=now)
            )
            res = await conn.execute(
                insert(sms_codes)
                .values(
                    phone=phone,
                    purpose=purpose,
                    code_hash=code_hash,
                    created_at=now,
                    expires_at=expires_at,
                    attempts=0,
                )
                .returning(sms_codes.c.id)
            )
            return int(res.scalar_one())

    async def burn(self, code_id: int, now: int) -> None:
        async with self._engine.begin() as conn:
            await conn.execute(
                update(sms_codes)
                .where(sms_codes.c.id == code_id, sms_codes.c.consumed_at.is_(None))
                .values(consumed_at=now)
            )

    async def check(
        self, phone: str, purpose: str, code_hash: str, *, now: int, max_attempts: int
    ) -> bool:
        """True (and the code consumed) if `code_hash` is the live code's; else one attempt
        counted against the live code, if any."""
        async with self._engine.begin() as conn:
            row = (
                await conn.execute(
                    select(sms_codes.c.id, sms_codes.c.code_hash)
                    .where(
                        sms_codes.c.phone == phone,
                        sms_codes.c.purpose == purpose,
                        sms_codes.c.consumed_at.is_(None),
                        sms_codes.c.expires_at > now,
                        sms_codes.c.attempts < max_attempts,
                    )
                    .order_by(sms_codes.c.created_at.desc(), sms_codes.c.id.desc())
                    .limit(1)
                )
            ).first()
            if row is None:
                return False
            live = sms_codes.c.id == row.id
            if hmac.compare_digest(row.code_hash, code_hash):
                res = await conn.execute(
                    update(sms_codes)
                    .where(live, sms_codes.c.consumed_at.is_(None))
                    .values(consumed_at=now)
                )
                return bool(res.rowcount == 1)
            await conn.execute(
                update(sms_codes).where(live).values(attempts=sms_codes.c.attempts + 1)
            )
            return False
