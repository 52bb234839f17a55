"""Webhook deliveries: queued with the task's terminal state, sent and retried by the sender."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from llmage.db.money import Stmt


@dataclass(frozen=True, slots=True)
class Delivery:
    id: int
    task_id: str
    url: str
    attempts: int


_INSERT = (
    "INSERT INTO webhook_deliveries (task_id, url, payload, attempts, next_attempt_at,"
    " created_at) VALUES (:task_id, :url, '', 0, :now, :now)"
)


def delivery_insert(task_id: str, url: str, now: int) -> Stmt:
    return Stmt(_INSERT, {"task_id": task_id, "url": url, "now": now})


class WebhookRepo:
    def __init__(self, engine: AsyncEngine, is_postgres: bool) -> None:
        self._engine = engine
        self._pg = is_postgres

    async def lease(self, now: int, until: int, limit: int) -> list[Delivery]:
        lock = " FOR UPDATE SKIP LOCKED" if self._pg else ""
        sql = text(
            "UPDATE webhook_deliveries SET lease_until = :until, attempts = attempts + 1"
            " WHERE id IN (SELECT id FROM webhook_deliveries WHERE delivered_at IS NULL"
            " AND failed_at IS NULL AND next_attempt_at <= :now"
            f" AND (lease_until IS NULL OR lease_until < :now) ORDER BY next_attempt_at"
            f" LIMIT :limit{lock}) RETURNING id, task_id, url, attempts"
        )
        async with self._engine.begin() as conn:
            rows = (await conn.execute(sql, {"now": now, "until": until, "limit": limit})).all()
        return [Delivery(r.id, r.task_id, r.url, r.attempts) for r in rows]

    async def finish(
        self,
        delivery_id: int,
        *,
        now: int,
        delivered: bool,
        payload: str,
        error: str | None,
        retry_at: int | None,
    ) -> None:
        if delivered:
            sql = (
                "UPDATE webhook_deliveries SET delivered_at = :now, payload = :payload,"
                " last_error = NULL, lease_until = NULL WHERE id = :id"
            )
        elif retry_at is None:
            sql = (
                "UPDATE webhook_deliveries SET failed_at = :now, payload = :payload,"
                " last_error = :error, lease_until = NULL WHERE id = :id"
            )
        else:
            sql = (
                "UPDATE webhook_deliveries SET next_attempt_at = :retry, payload = :payload,"
                " last_error = :error, lease_until = NULL WHERE id = :id"
            )
        async with self._engine.begin() as conn:
            await conn.execute(
                text(sql),
                {
                    "now": now,
                    "payload": payload,
                    "error": error,
                    "retry": retry_at,
                    "id": delivery_id,
                },
            )

    async def get(self, task_id: str) -> dict[str, object] | None:
        async with self._engine.connect() as conn:
            row = (
                await conn.execute(
                    text("SELECT * FROM webhook_deliveries WHERE task_id = :t"), {"t": task_id}
                )
            ).first()
        return dict(row._mapping) if row else None
