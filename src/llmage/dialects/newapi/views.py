"""The new-api `video.generation.job` object (seed 002's submit reply), also the GET shape.

Submit: `{id, task_id, object, model, status, progress, created_at}` (unix seconds). GET adds
`completed_at`, `video_url` and `url` (signed llmage media URL, null until completed),
`metadata {url, cover_url}`, `usage` (the task's usage record once completed) and
`error {code, message}` (failed or cancelled, else null).
"""

from __future__ import annotations

from typing import Any

from llmage.domain.catalog import Catalog
from llmage.domain.tasks import TaskRow, TaskStatus, newapi_status
from llmage.services.media import MediaService
from llmage.services.task_views import media_urls

OBJECT = "video.generation.job"
DIALECT = "newapi"


def job_model(row: TaskRow, catalog: Catalog) -> str:
    """The name a new-api client knows the task by: the seed 002 alias whose fixed settings
    describe this run (`viduq3p-720p-offpeak`), else the model name."""
    entry = catalog.any_by_llmid(row.llmid)
    if row.dialect != DIALECT or entry is None:
        return row.model
    return catalog.alias_for(entry, row.model, row.params) or row.model


def submit_view(row: TaskRow, model: str) -> dict[str, Any]:
    return {
        "id": row.id,
        "task_id": row.id,
        "object": OBJECT,
        "model": model,
        "status": newapi_status(row.status),
        "progress": row.progress,
        "created_at": row.created_at // 1000,
    }


def job_view(row: TaskRow, media: MediaService, base_url: str, catalog: Catalog) -> dict[str, Any]:
    view = submit_view(row, job_model(row, catalog))
    done = row.status is TaskStatus.SUCCEEDED
    urls = media_urls(row, media, base_url) if done else {"video": None, "image": None}
    view.update(
        {
            "completed_at": row.finished_at // 1000 if row.finished_at else None,
            "video_url": urls["video"],
            "url": urls["video"],
            "metadata": {"url": urls["video"], "cover_url": urls["image"]},
            "usage": row.usage if done else None,
            "error": (
                {"code": row.error_code, "message": row.error_message}
                if row.error_code and not done
                else None
            ),
        }
    )
    return view
