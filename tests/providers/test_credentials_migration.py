"""Migration 0004 on SQLite and PostgreSQL: channels written before typed credentials keep
working (their encrypted key becomes a `key` credential in place), tasks accept SUBMITTING and
still refuse unknown statuses."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from llmage.auth.crypto import CredentialBox
from llmage.db.engine import create_engine
from llmage.db.migrate import upgrade
from llmage.db.repos.channels import ChannelRepo
from llmage.domain.credentials import ApiKey
from llmage.services.routing import ChannelDirectory
from support.backends import BACKENDS, database_url

_TASK = (
    "INSERT INTO tasks (id, user_id, kind, llmid, model, dialect, status, params, hold_id,"
    " quoted, created_at, updated_at, deadline_at, next_poll_at)"
    " VALUES (:id, 1, 'video', 'l', 'm', 'native', :status, '{}', 'h', 1, 1, 1, 1, 1)"
)


@pytest.mark.parametrize("backend", BACKENDS)
def test_existing_channels_become_key_credentials(backend: str, tmp_path: Path) -> None:
    box = CredentialBox(Fernet.generate_key())
    with database_url(backend, tmp_path) as url:
        upgrade(url, "0003")

        async def before() -> None:
            engine = create_engine(url)
            async with engine.begin() as conn:
                await conn.execute(
                    text(
                        "INSERT INTO channels (name, provider, platform, base_url, credential_enc,"
                        " models, model_map, options, priority, weight, enabled, created_at)"
                        " VALUES ('old', 'openai_compat', 'p', 'http://u/v1', :enc, '[\"m\"]',"
                        " '{}', '{}', 0, 1, true, 1), ('keyless', 'sim', 'sim', '', NULL,"
                        " '[\"m\"]', '{}', '{}', 0, 1, true, 1)"
                    ),
                    {"enc": box.seal("sk-legacy-key")},
                )
                await conn.execute(
                    text(
                        "INSERT INTO users (username, password_hash, role, disabled, created_at)"
                        " VALUES ('u', 'x', 'user', false, 1)"
                    )
                )
            await engine.dispose()

        asyncio.run(before())
        upgrade(url)

        async def after() -> None:
            engine = create_engine(url)
            try:
                rows = {r.name: r for r in await ChannelRepo(engine).list()}
                assert rows["old"].credential_type == "key"
                assert rows["keyless"].credential_type is None
                directory = ChannelDirectory(ChannelRepo(engine), box, ttl=0)
                channels = {c.name: c for c in await directory.all()}
                assert channels["old"].credentials == ApiKey("sk-legacy-key")
                assert channels["old"].api_key == "sk-legacy-key"
                assert channels["keyless"].credentials is None
                async with engine.begin() as conn:
                    await conn.execute(text(_TASK), {"id": "t1", "status": "SUBMITTING"})
                with pytest.raises(IntegrityError):
                    async with engine.begin() as conn:
                        await conn.execute(text(_TASK), {"id": "t2", "status": "LIMBO"})
                async with engine.connect() as conn:
                    key_index = (
                        await conn.execute(text("SELECT key_index FROM tasks WHERE id = 't1'"))
                    ).scalar_one()
                assert key_index == 0
            finally:
                await engine.dispose()

        asyncio.run(after())
