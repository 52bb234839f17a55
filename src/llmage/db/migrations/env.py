"""Alembic environment: runs migrations through the same async engine as the server."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection

from llmage.db.engine import create_engine
from llmage.db.tables import metadata

config = context.config
_MIGRATION_LOCK = 0x6C6D6167  # "lmag": a PostgreSQL advisory lock key of our own


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _main() -> None:
    url = config.get_main_option("sqlalchemy.url")
    assert url
    engine = create_engine(url)
    async with engine.connect() as conn:
        pg = conn.dialect.name == "postgresql"
        if pg:
            # Instances (and `serve --workers N`) start together: one migrates, the others
            # wait here and then find the schema already at head.
            await conn.exec_driver_sql(f"SELECT pg_advisory_lock({_MIGRATION_LOCK})")
            await conn.commit()
        try:
            await conn.run_sync(_run)
            await conn.commit()
        finally:
            if pg:
                await conn.exec_driver_sql(f"SELECT pg_advisory_unlock({_MIGRATION_LOCK})")
                await conn.commit()
    await engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline SQL generation is not supported; run `llmage migrate`")
asyncio.run(_main())
