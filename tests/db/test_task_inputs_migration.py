"""Migration 0003 on both backends: stored input files move out of task params into `inputs`
(only records in the exact shape the platform wrote), and back again on downgrade."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from alembic import command
from sqlalchemy import text

from llmage.db.engine import Database
from llmage.db.migrate import alembic_config, upgrade
from llmage.domain.stored_files import StoredFile, files_from_record
from support.backends import BACKENDS, database_url

REF = {
    "key": "sha256/ab/" + "c" * 62 + ".png",
    "content_type": "image/png",
    "size": 3,
    "sha256": "ab" + "c" * 62,
}
OTHER = {**REF, "key": "sha256/de/" + "f" * 62 + ".jpg", "content_type": "image/jpeg"}
LEGACY = {
    "prompt": "p",
    "duration": 3,
    "image1_file": REF,
    "image_files": [REF, OTHER],
    "not_a_key": {**REF, "key": "../../etc/passwd"},  # not our key pattern: stays a param
    "extra_field": {**REF, "note": "x"},  # not exactly our four fields: stays a param
}


async def _sql(url: str, sql: str, **params: Any) -> list[Any]:
    db = Database(url)
    await db.start()
    try:
        async with db.engine.begin() as conn:
            result = await conn.execute(text(sql), params)
            return list(result.all()) if result.returns_rows else []
    finally:
        await db.close()


def sql(url: str, statement: str, **params: Any) -> list[Any]:
    return asyncio.run(_sql(url, statement, **params))


async def _task(url: str, task_id: str) -> Any:
    """The task's params and inputs at revision 0003, decoded as the repository decodes them
    (the repository itself reads the newest schema, which later migrations extend)."""
    db = Database(url)
    await db.start()
    try:
        async with db.engine.connect() as conn:
            params, inputs = (
                await conn.execute(
                    text("SELECT params, inputs FROM tasks WHERE id = :id"), {"id": task_id}
                )
            ).one()
    finally:
        await db.close()
    decoded = files_from_record(json.loads(inputs)) if inputs else {}
    return SimpleNamespace(params=json.loads(params), inputs=decoded)


@pytest.mark.parametrize("backend", BACKENDS)
def test_legacy_file_records_move_to_inputs_and_back(backend: str, tmp_path: Path) -> None:
    with database_url(backend, tmp_path) as url:
        upgrade(url, "0002")
        sql(
            url,
            "INSERT INTO users (username, password_hash, created_at) VALUES ('u', 'x', 0)",
        )
        (uid,) = sql(url, "SELECT id FROM users")[0]
        for task_id, params in (("legacy", LEGACY), ("plain", {"prompt": "q"})):
            sql(
                url,
                "INSERT INTO tasks (id, user_id, kind, llmid, model, dialect, status, params,"
                " hold_id, quoted, created_at, updated_at, deadline_at, next_poll_at)"
                " VALUES (:id, :uid, 'video', 'l', 'm', 'native', 'SUCCEEDED', :params, :hold,"
                " 1, 0, 0, 0, 0)",
                id=task_id,
                uid=uid,
                params=json.dumps(params),
                hold="h-" + task_id,
            )

        # 0003 moves the records; later revisions only add columns the repository reads.
        upgrade(url, "head")
        row = asyncio.run(_task(url, "legacy"))
        assert row.params == {
            "prompt": "p",
            "duration": 3,
            "not_a_key": LEGACY["not_a_key"],
            "extra_field": LEGACY["extra_field"],
        }
        assert row.inputs == {
            "image1_file": StoredFile(**REF),
            "image_files": (StoredFile(**REF), StoredFile(**OTHER)),
        }
        plain = asyncio.run(_task(url, "plain"))
        assert plain.params == {"prompt": "q"} and plain.inputs == {}

        upgrade_down(url, "0002")
        (params,) = sql(url, "SELECT params FROM tasks WHERE id = 'legacy'")[0]
        assert json.loads(params) == LEGACY


def upgrade_down(url: str, revision: str) -> None:
    command.downgrade(alembic_config(url), revision)
