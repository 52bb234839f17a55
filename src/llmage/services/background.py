"""Background loops owned by the server process (poller helpers, webhook sender, sweeper)."""

from __future__ import annotations

import asyncio
import contextlib


class BackgroundLoop:
    """start() runs `_loop` as a task; stop() cancels it and waits until it has ended."""

    name = "background"

    def __init__(self) -> None:
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name=self.name)

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _loop(self) -> None:
        raise NotImplementedError
