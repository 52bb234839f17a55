"""Media retention: stored task inputs and outputs are deleted a set time after the task
finished (`LLMAGE_MEDIA_RETENTION_DAYS`), so storage does not grow forever.

The task keeps its record (status, usage, charge) and says its files expired. Files go first,
then the mark: a sweep stopped in between deletes again (deleting is idempotent) and marks next
time, never leaving a task marked with its files still stored. A storage key still named by a
task that is not due (content addressing shares identical bytes) is kept. Every instance with
workers may run it; they do the same idempotent work. The clock is injectable for tests.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from sqlalchemy.ext.asyncio import AsyncEngine

from llmage.db.repos.retention import RetentionRepo
from llmage.domain.clock import now_ms
from llmage.services.background import BackgroundLoop
from llmage.storage.contract import Storage

log = logging.getLogger(__name__)

_DAY_MS = 86_400_000


class MediaReaper(BackgroundLoop):
    name = "media-retention"

    def __init__(
        self,
        engine: AsyncEngine,
        storage: Storage,
        *,
        retention_days: float,
        interval_seconds: float = 3600.0,
        batch: int = 200,
        clock: Callable[[], int] = now_ms,
    ) -> None:
        super().__init__()
        self._repo = RetentionRepo(engine)
        self._storage = storage
        self._retention_ms = int(retention_days * _DAY_MS)
        self._interval = interval_seconds
        self._batch = batch
        self._clock = clock

    async def _loop(self) -> None:
        while True:
            try:
                await self.sweep()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("media retention sweep failed")
            await asyncio.sleep(self._interval)

    async def sweep(self) -> int:
        """Expire every due task's files; returns how many tasks this call marked."""
        total = 0
        while True:
            now = self._clock()
            cutoff = now - self._retention_ms
            due = await self._repo.due(cutoff, self._batch)
            if not due:
                break
            for key in sorted(set().union(*(t.keys for t in due))):
                if not await self._repo.in_use(key, cutoff):
                    await self._storage.delete(key)
            marked = await self._repo.mark_expired((t.id for t in due), now)
            total += marked
            if len(due) < self._batch:
                break
        if total:
            log.info("media retention: deleted the files of %d tasks", total)
        return total
