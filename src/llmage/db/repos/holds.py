"""Holds, read side: what the sweeper and operators look at. Holds are written only by the
ledger's money programs (db/money/ledger.py)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from llmage.db.tables import holds


@dataclass(frozen=True, slots=True)
class HoldRow:
    id: str
    user_id: int
    key_id: int | None
    amount: int
    captured: int | None
    state: str  # open | captured | released
    purpose: str  # chat | task
    ref: str | None  # usage record id or task id
    created_at: int
    settled_at: int | None


def _row(r: object) -> HoldRow:
    return HoldRow(**r._mapping)  # type: ignore[attr-defined]


class HoldRepo:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def get(self, hold_id: str) -> HoldRow | None:
        async with self._engine.connect() as conn:
            row = (await conn.execute(select(holds).where(holds.c.id == hold_id))).first()
        return _row(row) if row else None

    async def stale_open(self, purpose: str, created_before: int, limit: int) -> list[HoldRow]:
        """Open holds of `purpose` opened before `created_before` (ms), oldest first."""
        q = (
            select(holds)
            .where(
                holds.c.state == "open",
                holds.c.purpose == purpose,
                holds.c.created_at < created_before,
            )
            .order_by(holds.c.created_at)
            .limit(limit)
        )
        async with self._engine.connect() as conn:
            return [_row(r) for r in (await conn.execute(q)).all()]
