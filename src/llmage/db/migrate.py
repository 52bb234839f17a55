"""Alembic, driven from code so `llmage migrate` and `serve` upgrade in place."""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command
from alembic.config import Config

_HERE = Path(__file__).resolve().parent / "migrations"


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(_HERE))
    cfg.set_main_option("sqlalchemy.url", url)
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(url), revision)


async def upgrade_async(url: str) -> None:
    # Alembic's env runs its own event loop for the async engine: keep it off ours.
    await asyncio.to_thread(upgrade, url)


def current(url: str) -> None:
    command.current(alembic_config(url), verbose=False)
