"""Usage records: one per billed request, written in the same transaction as its settlement."""

from __future__ import annotations

from dataclasses import dataclass, fields

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from llmage.db.money import Stmt
from llmage.db.tables import usage_records


@dataclass(slots=True)
class UsageRecord:
    id: str
    user_id: int
    key_id: int | None
    hold_id: str | None
    model: str
    llmid: str | None
    channel_id: int | None
    dialect: str
    stream: bool
    status: str  # ok | error | cancelled
    prompt_tokens: int
    completion_tokens: int
    cached_tokens: int
    amount: int
    estimated: bool  # tokens estimated by us (stream cut before upstream reported usage)
    latency_ms: int
    error: str | None
    created_at: int


_INSERT = (
    "INSERT INTO usage_records (id, user_id, key_id, hold_id, model, llmid, channel_id, dialect,"
    " stream, status, prompt_tokens, completion_tokens, cached_tokens, amount, estimated,"
    " latency_ms, error, created_at) VALUES (:id, :user_id, :key_id, :hold_id, :model, :llmid,"
    " :channel_id, :dialect, :stream, :status, :prompt_tokens, :completion_tokens,"
    " :cached_tokens, :amount, :estimated, :latency_ms, :error, :created_at)"
)


_FIELDS = tuple(f.name for f in fields(UsageRecord))


def usage_insert(record: UsageRecord) -> Stmt:
    # Not dataclasses.asdict: it deep-copies recursively and showed up in hot-path profiles.
    return Stmt(_INSERT, {name: getattr(record, name) for name in _FIELDS})


class UsageRepo:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def get(self, usage_id: str) -> UsageRecord | None:
        async with self._engine.connect() as conn:
            row = (
                await conn.execute(select(usage_records).where(usage_records.c.id == usage_id))
            ).first()
        return UsageRecord(**row._asdict()) if row else None

    async def list(self, user_id: int | None = None, limit: int = 100) -> list[UsageRecord]:
        q = select(usage_records).order_by(usage_records.c.created_at.desc()).limit(limit)
        if user_id is not None:
            q = q.where(usage_records.c.user_id == user_id)
        async with self._engine.connect() as conn:
            return [UsageRecord(**r._asdict()) for r in (await conn.execute(q)).all()]
