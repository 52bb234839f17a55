"""Every user's tasks, for admins: search, inspect (parameters, input and output links, error,
charge, channel) and cancel through the owner's own cancel path (one hold release)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from llmage.db.repos.task_search import FoundTask, TaskFilter, TaskSearchRepo
from llmage.domain.errors import NotFound
from llmage.domain.stored_files import slot_files
from llmage.services.media import MediaService
from llmage.services.task_views import media_urls
from llmage.services.tasks import TaskService

__all__ = ["AdminTaskView", "TaskAdmin", "TaskFilter"]


@dataclass(frozen=True, slots=True)
class AdminTaskView:
    found: FoundTask
    inputs: dict[str, list[str]]  # slot -> signed links
    outputs: dict[str, Any]  # image, video, images (signed links)


class TaskAdmin:
    def __init__(self, repo: TaskSearchRepo, tasks: TaskService, media: MediaService) -> None:
        self._repo = repo
        self._tasks = tasks
        self._media = media

    async def search(self, f: TaskFilter, *, limit: int, offset: int) -> list[FoundTask]:
        return await self._repo.search(f, limit=limit, offset=offset)

    async def inspect(self, task_id: str, base_url: str) -> AdminTaskView:
        found = await self._repo.one(task_id)
        if found is None:
            raise NotFound(f"No task '{task_id}'", param="task_id")
        row = found.row
        inputs = {
            name: [self._media.url(f, base_url, f"{name}{i + 1}") for i, f in enumerate(files)]
            for name, slot in row.inputs.items()
            if (files := slot_files(slot))
        }
        return AdminTaskView(found, inputs, media_urls(row, self._media, base_url))

    async def cancel(self, task_id: str, base_url: str) -> AdminTaskView:
        await self._tasks.cancel_by_admin(task_id)
        return await self.inspect(task_id, base_url)
