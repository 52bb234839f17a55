"""Upstream channels. Credentials are stored encrypted; decryption happens in the service layer."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from llmage.db.tables import channels
from llmage.domain.clock import now_ms
from llmage.domain.errors import Conflict


@dataclass(frozen=True, slots=True)
class ChannelRow:
    id: int
    name: str
    provider: str
    platform: str
    base_url: str
    credential_enc: str | None
    models: tuple[str, ...]
    model_map: dict[str, str]
    options: dict[str, Any]
    priority: int
    weight: int
    enabled: bool


class ChannelRepo:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def add(
        self,
        *,
        name: str,
        provider: str,
        platform: str,
        base_url: str,
        credential_enc: str | None,
        models: list[str],
        model_map: dict[str, str] | None = None,
        options: dict[str, Any] | None = None,
        priority: int = 0,
        weight: int = 1,
    ) -> int:
        if any(c.name == name for c in await self.list()):
            raise Conflict(f"a channel named '{name}' already exists", param="name")
        async with self._engine.begin() as conn:
            res = await conn.execute(
                insert(channels)
                .values(
                    name=name,
                    provider=provider,
                    platform=platform,
                    base_url=base_url,
                    credential_enc=credential_enc,
                    models=json.dumps(models),
                    model_map=json.dumps(model_map or {}),
                    options=json.dumps(options or {}),
                    priority=priority,
                    weight=weight,
                    enabled=True,
                    created_at=now_ms(),
                )
                .returning(channels.c.id)
            )
            return int(res.scalar_one())

    async def list(self, *, enabled_only: bool = False) -> list[ChannelRow]:
        q = select(channels).order_by(channels.c.id)
        if enabled_only:
            q = q.where(channels.c.enabled.is_(True))
        async with self._engine.connect() as conn:
            rows = (await conn.execute(q)).all()
        return [
            ChannelRow(
                id=r.id,
                name=r.name,
                provider=r.provider,
                platform=r.platform,
                base_url=r.base_url,
                credential_enc=r.credential_enc,
                models=tuple(json.loads(r.models)),
                model_map=json.loads(r.model_map),
                options=json.loads(r.options),
                priority=r.priority,
                weight=r.weight,
                enabled=bool(r.enabled),
            )
            for r in rows
        ]

    async def set_enabled(self, ident: str, enabled: bool) -> bool:
        q = update(channels).values(enabled=enabled)
        q = (
            q.where(channels.c.id == int(ident))
            if ident.isdigit()
            else q.where(channels.c.name == ident)
        )
        async with self._engine.begin() as conn:
            res = await conn.execute(q)
        return bool(res.rowcount)
