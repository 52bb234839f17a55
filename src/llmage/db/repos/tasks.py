"""Tasks: reads through SQLAlchemy; every state change as a money-store statement so it can share
a transaction with the hold it belongs to (submit = hold + insert; finish = settle + update)."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy import and_, or_, select, text, update
from sqlalchemy.ext.asyncio import AsyncEngine

from llmage.db.money import Stmt
from llmage.db.tables import tasks
from llmage.domain.stored_files import files_from_record, files_record
from llmage.domain.tasks import TaskRow, TaskStatus


class TaskStateChanged(Exception):
    """A compare-and-swap on a task lost: another worker (or a cancel) moved it first."""


def _row(r: Any) -> TaskRow:
    m = r._mapping
    return TaskRow(
        id=m["id"],
        user_id=m["user_id"],
        key_id=m["key_id"],
        kind=m["kind"],
        llmid=m["llmid"],
        model=m["model"],
        dialect=m["dialect"],
        platform=m["platform"],
        status=TaskStatus(m["status"]),
        progress=m["progress"],
        params=json.loads(m["params"]),
        inputs=files_from_record(json.loads(m["inputs"])) if m["inputs"] else {},
        channel_id=m["channel_id"],
        provider=m["provider"],
        upstream_id=m["upstream_id"],
        key_index=m["key_index"] or 0,
        upstream_state=json.loads(m["upstream_state"]) if m["upstream_state"] else {},
        hold_id=m["hold_id"],
        quoted=m["quoted"],
        charged=m["charged"],
        usage=json.loads(m["usage"]) if m["usage"] else None,
        outputs=files_from_record(json.loads(m["outputs"])) if m["outputs"] else {},
        error_code=m["error_code"],
        error_message=m["error_message"],
        idempotency_key=m["idempotency_key"],
        request_hash=m["request_hash"],
        callback_url=m["callback_url"],
        remix_of=m["remix_of"],
        created_at=m["created_at"],
        updated_at=m["updated_at"],
        finished_at=m["finished_at"],
        deadline_at=m["deadline_at"],
        next_poll_at=m["next_poll_at"],
        polls=m["polls"],
        deleted_at=m["deleted_at"],
        media_expired_at=m["media_expired_at"],
    )


_INSERT = (
    "INSERT INTO tasks (id, user_id, key_id, kind, llmid, model, dialect, platform, status,"
    " progress, params, inputs, hold_id, quoted, idempotency_key, request_hash, callback_url,"
    " remix_of, created_at, updated_at, deadline_at, next_poll_at, polls)"
    " VALUES (:id, :user_id, :key_id, :kind, :llmid, :model, :dialect, :platform, 'CREATED', 0,"
    " :params, :inputs, :hold_id, :quoted, :idempotency_key, :request_hash, :callback_url,"
    " :remix_of, :now, :now, :deadline_at, :now, 0)"
)


_OPEN_COUNT = (
    "UPDATE accounts SET held = held WHERE user_id = :user AND (SELECT COUNT(*) FROM tasks"
    " WHERE {column} = :subject AND status IN ('CREATED', 'PENDING', 'RUNNING')) <= :limit"
)


def open_tasks_guard(
    user_id: int, column: str, subject: int, limit: int, refused: Callable[[], Exception]
) -> Stmt:
    """Runs after the task insert of a submit program: aborts it when the user (column
    `user_id`) or key (`key_id`) now has more than `limit` open tasks. The hold before it has
    locked the user's account row, so one user's submits count one after another, on every
    backend and instance: the count is exact, from the database, never from a cache."""
    assert column in ("user_id", "key_id")
    params = {"user": user_id, "subject": subject, "limit": limit}
    return Stmt(_OPEN_COUNT.format(column=column), params, refused)


class ChannelFull(Exception):
    """Every slot of the channel's `max_concurrency` is taken: the task waits in our queue."""


# Locks the channel's row first, so that on PostgreSQL two workers claiming a slot on one
# channel count one after the other (the count runs in a later statement, which under READ
# COMMITTED sees what the first one committed). SQLite has a single writer anyway.
_CHANNEL_LOCK = "UPDATE channels SET priority = priority WHERE id = :channel"
_CHANNEL_SLOT = (
    "UPDATE channels SET priority = priority WHERE id = :channel AND (SELECT COUNT(*) FROM tasks"
    " WHERE channel_id = :channel AND status IN ('SUBMITTING', 'PENDING', 'RUNNING')"
    " AND id <> :task) < :limit"
)


def channel_slot_guard(channel_id: int, limit: int, task_id: str) -> list[Stmt]:
    """Runs before a task's move to SUBMITTING on a channel: aborts the program with
    ChannelFull while the channel already runs `limit` tasks upstream. Counted from the
    database, so the limit holds across pollers and instances."""
    params = {"channel": channel_id, "limit": limit, "task": task_id}
    return [
        Stmt(_CHANNEL_LOCK, {"channel": channel_id}),
        Stmt(_CHANNEL_SLOT, params, ChannelFull),
    ]


def insert_stmt(values: Mapping[str, Any]) -> Stmt:
    """`params` plain JSON; `inputs` the stored files (TaskFiles), kept apart from params."""
    inputs = files_record(values.get("inputs") or {})
    return Stmt(
        _INSERT,
        {
            **values,
            "params": json.dumps(values["params"], sort_keys=True),
            "inputs": json.dumps(inputs, sort_keys=True) if inputs else None,
        },
    )


def _set_clause(fields: Mapping[str, Any]) -> str:
    return ", ".join(f"{name} = :{name}" for name in fields)


def advance_stmt(
    task_id: str,
    from_status: TaskStatus,
    fields: Mapping[str, Any],
    lost: Callable[[], Exception] = TaskStateChanged,
) -> Stmt:
    """Compare-and-swap: applies only while the task is still in `from_status`."""
    values = {
        k: json.dumps(v) if k in ("usage", "outputs", "upstream_state") and v is not None else v
        for k, v in fields.items()
    }
    sql = (
        f"UPDATE tasks SET {_set_clause(values)}, lease_owner = NULL, lease_until = NULL"
        " WHERE id = :task_id AND status = :from_status"
    )
    return Stmt(sql, {**values, "task_id": task_id, "from_status": from_status.value}, lost)


class TaskRepo:
    def __init__(self, engine: AsyncEngine, is_postgres: bool) -> None:
        self._engine = engine
        self._pg = is_postgres

    async def get(self, task_id: str, user_id: int | None = None) -> TaskRow | None:
        if "\x00" in task_id:  # no row can have it, and PostgreSQL refuses NUL in any text
            return None
        q = select(tasks).where(tasks.c.id == task_id)
        if user_id is not None:
            q = q.where(tasks.c.user_id == user_id)
        async with self._engine.connect() as conn:
            row = (await conn.execute(q)).first()
        return _row(row) if row else None

    async def by_idempotency(self, user_id: int, key: str) -> TaskRow | None:
        q = select(tasks).where(tasks.c.user_id == user_id, tasks.c.idempotency_key == key)
        async with self._engine.connect() as conn:
            row = (await conn.execute(q)).first()
        return _row(row) if row else None

    async def page(
        self,
        user_id: int | None,
        *,
        kind: str | None = None,
        limit: int = 20,
        after: str | None = None,
        ascending: bool = False,
        include_deleted: bool = False,
    ) -> list[TaskRow]:
        """Cursor page ordered by (created_at, id); `after` is the last id of the previous page."""
        q = select(tasks)
        if user_id is not None:
            q = q.where(tasks.c.user_id == user_id)
        if kind:
            q = q.where(tasks.c.kind == kind)
        if not include_deleted:
            q = q.where(tasks.c.deleted_at.is_(None))
        if after:
            anchor = await self.get(after, user_id)
            if anchor is not None:
                cmp = (
                    or_(
                        tasks.c.created_at > anchor.created_at,
                        and_(tasks.c.created_at == anchor.created_at, tasks.c.id > anchor.id),
                    )
                    if ascending
                    else or_(
                        tasks.c.created_at < anchor.created_at,
                        and_(tasks.c.created_at == anchor.created_at, tasks.c.id < anchor.id),
                    )
                )
                q = q.where(cmp)
        order = (
            (tasks.c.created_at.asc(), tasks.c.id.asc())
            if ascending
            else (tasks.c.created_at.desc(), tasks.c.id.desc())
        )
        q = q.order_by(*order).limit(limit)
        async with self._engine.connect() as conn:
            return [_row(r) for r in (await conn.execute(q)).all()]

    async def lease(self, owner: str, now: int, until: int, limit: int) -> list[TaskRow]:
        """Claim up to `limit` due open tasks for `owner` until `until` (ms). PostgreSQL skips
        rows another instance is claiming right now; SQLite has one writer at a time anyway."""
        lock = " FOR UPDATE SKIP LOCKED" if self._pg else ""
        sql = text(
            "UPDATE tasks SET lease_owner = :owner, lease_until = :until, polls = polls + 1"
            " WHERE id IN (SELECT id FROM tasks"
            " WHERE status IN ('CREATED', 'SUBMITTING', 'PENDING', 'RUNNING')"
            " AND next_poll_at <= :now AND (lease_until IS NULL OR lease_until < :now)"
            f" ORDER BY next_poll_at LIMIT :limit{lock})"
            " AND (lease_until IS NULL OR lease_until < :now) RETURNING *"
        )
        async with self._engine.begin() as conn:
            rows = (
                await conn.execute(
                    sql, {"owner": owner, "until": until, "now": now, "limit": limit}
                )
            ).all()
        return [_row(r) for r in rows]

    async def open_on_channel(self, channel_id: int) -> int:
        """How many open tasks were submitted through a channel (removal refuses while any)."""
        q = text(
            "SELECT COUNT(*) FROM tasks WHERE channel_id = :c"
            " AND status IN ('CREATED', 'SUBMITTING', 'PENDING', 'RUNNING')"
        )
        async with self._engine.connect() as conn:
            return int((await conn.execute(q, {"c": channel_id})).scalar_one())

    async def upstream_ids_since(self, channel_id: int, since: int, exclude: str) -> frozenset[str]:
        """Upstream ids that tasks on a channel (other than `exclude`) own and that the upstream
        may have created at or after `since` (ms): every open task's, and those of tasks that
        finished since (a task finishes after its upstream task was created)."""
        q = text(
            "SELECT upstream_id FROM tasks WHERE channel_id = :c AND upstream_id IS NOT NULL"
            " AND id <> :me AND (status IN ('SUBMITTING', 'PENDING', 'RUNNING')"
            " OR finished_at >= :since)"
        )
        async with self._engine.connect() as conn:
            rows = (await conn.execute(q, {"c": channel_id, "me": exclude, "since": since})).all()
        return frozenset(str(r[0]) for r in rows)

    async def mark_deleted(self, task_id: str, user_id: int, now: int) -> bool:
        q = (
            update(tasks)
            .where(tasks.c.id == task_id, tasks.c.user_id == user_id, tasks.c.deleted_at.is_(None))
            .values(deleted_at=now)
        )
        async with self._engine.begin() as conn:
            return bool((await conn.execute(q)).rowcount)
