"""Stored catalog overrides (table `model_overrides`): one row per overridden llmid."""

from __future__ import annotations

import json

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from llmage.db.tables import model_overrides
from llmage.domain.model_overrides import ModelOverride


class ModelOverrideRepo:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def all(self) -> list[ModelOverride]:
        async with self._engine.connect() as conn:
            rows = (await conn.execute(select(model_overrides))).all()
        return [
            ModelOverride(
                llmid=r.llmid,
                enabled=bool(r.enabled),
                price=json.loads(r.price) if r.price else None,
                updated_at=r.updated_at,
                updated_by=r.updated_by,
            )
            for r in rows
        ]

    async def put(self, o: ModelOverride) -> None:
        """Insert or replace the override of `o.llmid` (a row with nothing to override goes)."""
        values = {
            "enabled": o.enabled,
            "price": json.dumps(dict(o.price), sort_keys=True) if o.price else None,
            "updated_at": o.updated_at,
            "updated_by": o.updated_by,
        }
        row = model_overrides.c.llmid == o.llmid
        if o.enabled and not o.price:
            async with self._engine.begin() as conn:
                await conn.execute(delete(model_overrides).where(row))
            return
        for _ in range(2):  # a concurrent first insert of the same llmid: update theirs
            try:
                async with self._engine.begin() as conn:
                    done = await conn.execute(update(model_overrides).where(row).values(**values))
                    if not done.rowcount:
                        await conn.execute(model_overrides.insert().values(llmid=o.llmid, **values))
                return
            except IntegrityError:
                continue
