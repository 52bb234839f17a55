"""Running CLI work against a started Platform, with errors as one clear line."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

import click

from llmage.cli.locate import settings_for_admin
from llmage.domain.errors import LlmageError
from llmage.services.platform import Platform
from llmage.settings import Settings

T = TypeVar("T")


def run(work: Callable[[Platform], Awaitable[T]], settings: Settings | None = None) -> T:
    # Admin commands: the server's database, never a new empty one by accident.
    settings = settings or settings_for_admin()

    async def main() -> T:
        platform = Platform(settings)
        await platform.start()
        try:
            return await work(platform)
        finally:
            await platform.close()

    try:
        return asyncio.run(main())
    except LlmageError as exc:
        raise click.ClickException(exc.message) from exc
