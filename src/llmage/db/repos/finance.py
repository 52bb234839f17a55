"""Read-only views of a user's money for the finance pages: ledger entries, usage (chat requests
and generation tasks in one list), open holds, and per-day totals for the spend chart.

Usage merges two tables with one UNION ALL so that filters, order and pagination happen in SQL:
a chat request is a `usage_records` row, a video or image job a `tasks` row. Their statuses are
mapped onto one vocabulary: succeeded, failed, cancelled, running.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    BigInteger,
    Integer,
    Select,
    String,
    Text,
    case,
    cast,
    literal,
    null,
    select,
    text,
    union_all,
)
from sqlalchemy.ext.asyncio import AsyncEngine

from llmage.db.tables import holds, ledger_entries, tasks, usage_records

USAGE_KINDS = ("chat", "video", "image")
USAGE_STATUSES = ("succeeded", "failed", "cancelled", "running")
DAY_MS = 86_400_000


@dataclass(frozen=True, slots=True)
class EntryRow:
    id: int
    kind: str
    delta_balance: int
    delta_held: int
    ref: str
    memo: str | None
    actor_id: int | None
    created_at: int


@dataclass(frozen=True, slots=True)
class UsageRow:
    id: str
    kind: str  # chat | video | image
    model: str
    llmid: str | None
    status: str  # succeeded | failed | cancelled | running
    amount: int  # charged; for a running task, what it holds
    prompt_tokens: int | None
    completion_tokens: int | None
    detail: str | None  # a task's usage JSON (seconds, resolution...)
    error: str | None
    dialect: str
    key_id: int | None
    created_at: int
    finished_at: int | None


@dataclass(frozen=True, slots=True)
class UsageFilter:
    model: str | None = None
    kind: str | None = None
    status: str | None = None
    since: int | None = None  # epoch ms, inclusive
    until: int | None = None  # epoch ms, exclusive


@dataclass(frozen=True, slots=True)
class OpenHold:
    id: str
    amount: int
    purpose: str
    ref: str | None
    created_at: int


def _chat_branch(user_id: int, f: UsageFilter) -> Select[Any]:
    u = usage_records.c
    status = case(
        (u.status == "ok", "succeeded"),
        (u.status == "cancelled", "cancelled"),
        else_="failed",
    )
    q = select(
        u.id.label("id"),
        literal("chat", String).label("kind"),
        u.model.label("model"),
        u.llmid.label("llmid"),
        status.label("status"),
        u.amount.label("amount"),
        cast(u.prompt_tokens, Integer).label("prompt_tokens"),
        cast(u.completion_tokens, Integer).label("completion_tokens"),
        cast(null(), Text).label("detail"),
        u.error.label("error"),
        u.dialect.label("dialect"),
        u.key_id.label("key_id"),
        u.created_at.label("created_at"),
        (u.created_at + u.latency_ms).label("finished_at"),
    ).where(u.user_id == user_id)
    if f.model:
        q = q.where(u.model == f.model)
    if f.status:
        q = q.where(status == f.status)
    if f.since is not None:
        q = q.where(u.created_at >= f.since)
    if f.until is not None:
        q = q.where(u.created_at < f.until)
    return q


def _task_branch(user_id: int, f: UsageFilter) -> Select[Any]:
    t = tasks.c
    status = case(
        (t.status == "SUCCEEDED", "succeeded"),
        (t.status == "FAILED", "failed"),
        (t.status == "CANCELLED", "cancelled"),
        else_="running",
    )
    amount = case((t.charged.is_(None), t.quoted), else_=t.charged)
    q = select(
        t.id.label("id"),
        cast(t.kind, String).label("kind"),
        t.model.label("model"),
        t.llmid.label("llmid"),
        status.label("status"),
        cast(amount, BigInteger).label("amount"),
        cast(null(), Integer).label("prompt_tokens"),
        cast(null(), Integer).label("completion_tokens"),
        t.usage.label("detail"),
        t.error_message.label("error"),
        t.dialect.label("dialect"),
        t.key_id.label("key_id"),
        t.created_at.label("created_at"),
        t.finished_at.label("finished_at"),
    ).where(t.user_id == user_id, t.deleted_at.is_(None))
    if f.kind in ("video", "image"):
        q = q.where(t.kind == f.kind)
    if f.model:
        q = q.where(t.model == f.model)
    if f.status:
        q = q.where(status == f.status)
    if f.since is not None:
        q = q.where(t.created_at >= f.since)
    if f.until is not None:
        q = q.where(t.created_at < f.until)
    return q


class FinanceRepo:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def entries(
        self,
        user_id: int,
        *,
        kinds: tuple[str, ...] | None,
        since: int | None,
        until: int | None,
        offset: int,
        limit: int,
    ) -> list[EntryRow]:
        e = ledger_entries.c
        q = (
            select(
                e.id,
                e.kind,
                e.delta_balance,
                e.delta_held,
                e.ref,
                e.memo,
                e.actor_id,
                e.created_at,
            )
            .where(e.user_id == user_id)
            .order_by(e.id.desc())
            .offset(offset)
            .limit(limit)
        )
        if kinds:
            q = q.where(e.kind.in_(kinds))
        if since is not None:
            q = q.where(e.created_at >= since)
        if until is not None:
            q = q.where(e.created_at < until)
        async with self._engine.connect() as conn:
            return [EntryRow(*r) for r in (await conn.execute(q)).all()]

    async def usage(
        self, user_id: int, f: UsageFilter, *, offset: int, limit: int
    ) -> list[UsageRow]:
        branches: list[Select[Any]] = []
        if f.kind in (None, "chat"):
            branches.append(_chat_branch(user_id, f))
        if f.kind in (None, "video", "image"):
            branches.append(_task_branch(user_id, f))
        if not branches:
            return []
        merged = (union_all(*branches) if len(branches) > 1 else branches[0]).subquery()
        q = (
            select(merged)
            .order_by(merged.c.created_at.desc(), merged.c.id.desc())
            .offset(offset)
            .limit(limit)
        )
        async with self._engine.connect() as conn:
            return [UsageRow(*r) for r in (await conn.execute(q)).all()]

    async def open_holds(self, user_id: int, limit: int = 50) -> list[OpenHold]:
        h = holds.c
        q = (
            select(h.id, h.amount, h.purpose, h.ref, h.created_at)
            .where(h.user_id == user_id, h.state == "open")
            .order_by(h.created_at.desc())
            .limit(limit)
        )
        async with self._engine.connect() as conn:
            return [OpenHold(*r) for r in (await conn.execute(q)).all()]

    async def daily(
        self, user_id: int, since: int, utc_offset_ms: int
    ) -> list[tuple[int, str, int]]:
        """(day number since the epoch in local time, kind, Σ delta_balance) from `since`."""
        sql = text(
            "SELECT (created_at + :off) / :day AS day, kind, SUM(delta_balance) AS total"
            " FROM ledger_entries WHERE user_id = :user AND created_at >= :since"
            " AND kind IN ('capture', 'topup', 'redeem', 'adjust', 'refund')"
            " GROUP BY 1, 2"
        )
        params = {"off": utc_offset_ms, "day": DAY_MS, "user": user_id, "since": since}
        async with self._engine.connect() as conn:
            rows = (await conn.execute(sql, params)).all()
        return [(int(r.day), str(r.kind), int(r.total)) for r in rows]
