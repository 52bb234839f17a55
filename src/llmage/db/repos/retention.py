"""Media retention queries: finished tasks whose stored files are due for deletion."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine


@dataclass(frozen=True, slots=True)
class ExpiringTask:
    id: str
    keys: frozenset[str]  # storage keys of its stored inputs and outputs


def _refs(value: Any) -> Iterator[str]:
    """Storage keys inside a task's `inputs` or `outputs` record (dicts with key + type)."""
    if isinstance(value, dict):
        if isinstance(value.get("key"), str) and "content_type" in value:
            yield value["key"]
        else:
            for v in value.values():
                yield from _refs(v)
    elif isinstance(value, list):
        for v in value:
            yield from _refs(v)


class RetentionRepo:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def due(self, cutoff_ms: int, limit: int) -> list[ExpiringTask]:
        """Tasks that finished before `cutoff_ms` and still have their files, oldest first."""
        sql = text(
            "SELECT id, inputs, outputs FROM tasks WHERE finished_at < :cutoff"
            " AND media_expired_at IS NULL ORDER BY finished_at LIMIT :limit"
        )
        async with self._engine.connect() as conn:
            rows = (await conn.execute(sql, {"cutoff": cutoff_ms, "limit": limit})).all()
        out = []
        for r in rows:
            keys: set[str] = set()
            for column in (r.inputs, r.outputs):
                if column:
                    keys.update(_refs(json.loads(column)))
            out.append(ExpiringTask(r.id, frozenset(keys)))
        return out

    async def in_use(self, key: str, cutoff_ms: int) -> bool:
        """Storage is content-addressed: the same bytes under one key may also belong to a
        task that is not due yet (an input uploaded again, a remix). Such a key stays."""
        sql = text(
            "SELECT 1 FROM tasks WHERE media_expired_at IS NULL"
            " AND (finished_at IS NULL OR finished_at >= :cutoff)"
            " AND (inputs LIKE :pattern OR outputs LIKE :pattern) LIMIT 1"
        )
        async with self._engine.connect() as conn:
            row = (await conn.execute(sql, {"cutoff": cutoff_ms, "pattern": f'%"{key}"%'})).first()
        return row is not None

    async def mark_expired(self, task_ids: Iterable[str], now_ms: int) -> int:
        """The task keeps its record (status, params, usage, charge); its file records go, so
        no view mints a link to a deleted file."""
        ids = list(task_ids)
        if not ids:
            return 0
        sql = text(
            "UPDATE tasks SET media_expired_at = :now, inputs = NULL, outputs = NULL"
            " WHERE id = :id AND media_expired_at IS NULL"
        )
        async with self._engine.begin() as conn:
            res = await conn.execute(sql, [{"now": now_ms, "id": i} for i in ids])
        return int(res.rowcount or 0)
