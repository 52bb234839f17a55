"""Every user's tasks for the admin console: filtered, newest first, with the owner's name."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncEngine

from llmage.db.repos.tasks import _row
from llmage.db.tables import channels, tasks, users
from llmage.domain.tasks import TaskRow, TaskStatus


@dataclass(frozen=True, slots=True)
class TaskFilter:
    statuses: tuple[TaskStatus, ...] = ()
    model: str | None = None  # a model name or an llmid
    user: str | None = None  # a username, or a user id
    since: int | None = None  # created_at >= (ms)
    until: int | None = None  # created_at < (ms)


@dataclass(frozen=True, slots=True)
class FoundTask:
    row: TaskRow
    username: str
    channel_name: str | None


class TaskSearchRepo:
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def search(self, f: TaskFilter, *, limit: int, offset: int) -> list[FoundTask]:
        q = (
            select(tasks, users.c.username.label("owner_name"), channels.c.name.label("ch_name"))
            .join(users, users.c.id == tasks.c.user_id)
            .outerjoin(channels, channels.c.id == tasks.c.channel_id)
        )
        if f.statuses:
            q = q.where(tasks.c.status.in_([s.value for s in f.statuses]))
        if f.model:
            q = q.where(or_(tasks.c.model == f.model, tasks.c.llmid == f.model))
        if f.user:
            match = users.c.username == f.user
            if f.user.isdigit() and len(f.user) < 10:
                match = or_(match, users.c.id == int(f.user))
            q = q.where(match)
        if f.since is not None:
            q = q.where(tasks.c.created_at >= f.since)
        if f.until is not None:
            q = q.where(tasks.c.created_at < f.until)
        q = q.order_by(tasks.c.created_at.desc(), tasks.c.id.desc()).limit(limit).offset(offset)
        async with self._engine.connect() as conn:
            rows = (await conn.execute(q)).all()
        return [FoundTask(_row(r), r.owner_name, r.ch_name) for r in rows]

    async def one(self, task_id: str) -> FoundTask | None:
        if "\x00" in task_id:
            return None
        q = (
            select(tasks, users.c.username.label("owner_name"), channels.c.name.label("ch_name"))
            .join(users, users.c.id == tasks.c.user_id)
            .outerjoin(channels, channels.c.id == tasks.c.channel_id)
            .where(tasks.c.id == task_id)
        )
        async with self._engine.connect() as conn:
            r = (await conn.execute(q)).first()
        return FoundTask(_row(r), r.owner_name, r.ch_name) if r else None
