"""The native task shape (seed 000), shared by the native dialect and webhook payloads:
`{status, taskid, usage, image, video}` with `image` the cover (or first image) and `video` the
video, both as signed llmage URLs minted from the task's own output records."""

from __future__ import annotations

from typing import Any

from llmage.domain.stored_files import StoredFile, slot_files
from llmage.domain.tasks import TaskRow, TaskStatus
from llmage.services.media import MediaService


def media_urls(row: TaskRow, media: MediaService, base_url: str) -> dict[str, Any]:
    out = row.outputs
    urls: dict[str, Any] = {"image": None, "video": None, "images": []}
    video, cover = out.get("video"), out.get("cover")
    if isinstance(video, StoredFile):
        urls["video"] = media.url(video, base_url, "video")
    if isinstance(cover, StoredFile):
        urls["image"] = media.url(cover, base_url, "cover")
    stills = slot_files(out["images"]) if "images" in out else ()
    images = [media.url(f, base_url, f"image{i + 1}") for i, f in enumerate(stills)]
    if images:
        urls["images"] = images
        urls["image"] = urls["image"] or images[0]
    return urls


def native_view(row: TaskRow, media: MediaService, base_url: str) -> dict[str, Any]:
    urls = media_urls(row, media, base_url)
    view: dict[str, Any] = {
        "taskid": row.id,
        "status": row.status.public.value,
        "usage": row.usage if row.status is TaskStatus.SUCCEEDED else None,
        "image": urls["image"],
        "video": urls["video"],
    }
    if urls["images"]:
        view["images"] = urls["images"]
    if row.error_code:
        view["error"] = {"code": row.error_code, "message": row.error_message}
    if row.media_expired_at is not None:
        # Retention deleted the files; the task and its usage stay on record.
        view["media_expired"] = True
        view["media_expired_at"] = row.media_expired_at // 1000
    return view
