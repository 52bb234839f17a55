"""Database backends for tests: a fresh SQLite file, or a fresh PostgreSQL database created on
the local server (127.0.0.1:5432, database `test` for the admin connection). PostgreSQL tests
skip, with the reason shown, only where no server answers."""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

PG_ADMIN_DSN = os.environ.get("LLMAGE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


async def _pg_admin(sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(PG_ADMIN_DSN, timeout=5)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def postgres_available() -> str | None:
    """None if PostgreSQL answers, else the reason it does not."""
    try:
        asyncio.run(_pg_admin("SELECT 1"))
    except Exception as exc:
        return f"PostgreSQL not reachable at {PG_ADMIN_DSN}: {exc!r}"
    return None


@contextmanager
def database_url(backend: str, tmp: Path) -> Iterator[str]:
    if backend == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp / 'llmage.db'}"
        return
    reason = postgres_available()
    if reason:
        if os.environ.get("CI"):
            pytest.fail(reason)  # CI machines run PostgreSQL: its absence is a failure there
        pytest.skip(reason)
    name = "llmage_t_" + secrets.token_hex(6)
    asyncio.run(_pg_admin(f'CREATE DATABASE "{name}"'))
    base = PG_ADMIN_DSN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
    try:
        yield f"{base}/{name}"
    finally:
        asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


BACKENDS = ["sqlite", "postgres"]
