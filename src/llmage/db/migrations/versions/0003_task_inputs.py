"""task inputs: stored input files kept apart from request parameters

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02 10:00:00.000000

Media links are minted only from a task's own file records. Until now stored input files sat in
`params` beside the client's own values, where a client could place an object of the same shape;
from here on they live in `inputs`. Existing rows are moved over: a params value is taken as a
stored file only in the exact shape the platform wrote (a storage key of our pattern and the four
fields). Served types no longer come from records at all (the media route sniffs the bytes), so
a forged record moved here can at most name a file by its content hash, which its sender knew.
"""

from __future__ import annotations

import json
import re
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_KEY_RE = re.compile(r"sha256/[0-9a-f]{2}/[0-9a-f]{62}\.[a-z0-9]{1,5}")
_FIELDS = {"key", "content_type", "size", "sha256"}


def _is_record(value: Any) -> bool:
    return (
        isinstance(value, dict)
        and set(value) == _FIELDS
        and isinstance(value["key"], str)
        and _KEY_RE.fullmatch(value["key"]) is not None
        and isinstance(value["content_type"], str)
    )


def _is_files(value: Any) -> bool:
    if isinstance(value, list):
        return bool(value) and all(_is_record(v) for v in value)
    return _is_record(value)


def upgrade() -> None:
    with op.batch_alter_table("tasks") as batch:
        batch.add_column(sa.Column("inputs", sa.Text(), nullable=True))
    conn = op.get_bind()
    tasks = sa.table("tasks", sa.column("id"), sa.column("params"), sa.column("inputs"))
    rows = conn.execute(
        sa.select(tasks.c.id, tasks.c.params).where(tasks.c.params.like('%"sha256/%'))
    ).all()
    for task_id, raw in rows:
        params = json.loads(raw)
        files = {k: v for k, v in params.items() if _is_files(v)}
        if not files:
            continue
        plain = {k: v for k, v in params.items() if k not in files}
        conn.execute(
            tasks.update()
            .where(tasks.c.id == task_id)
            .values(
                params=json.dumps(plain, sort_keys=True), inputs=json.dumps(files, sort_keys=True)
            )
        )


def downgrade() -> None:
    conn = op.get_bind()
    tasks = sa.table("tasks", sa.column("id"), sa.column("params"), sa.column("inputs"))
    rows = conn.execute(
        sa.select(tasks.c.id, tasks.c.params, tasks.c.inputs).where(tasks.c.inputs.is_not(None))
    ).all()
    for task_id, raw, inputs in rows:
        params = {**json.loads(raw), **json.loads(inputs)}
        conn.execute(
            tasks.update()
            .where(tasks.c.id == task_id)
            .values(params=json.dumps(params, sort_keys=True))
        )
    with op.batch_alter_table("tasks") as batch:
        batch.drop_column("inputs")
