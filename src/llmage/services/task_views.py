"""The native task shape (seed 000), shared by the native dialect and webhook payloads:
`{status, taskid, usage, image, video}` with `image` the cover (or first image) and `video` the
video, both as signed llmage URLs."""

from __future__ import annotations

from typing import Any

from llmage.domain.tasks import TaskRow
from llmage.services.media import MediaService


def media_urls(row: TaskRow, media: MediaService, base_url: str) -> dict[str, Any]:
    out = row.outputs or {}
    urls: dict[str, Any] = {"image": None, "video": None, "images": []}
    if "video" in out:
        urls["video"] = media.url(out["video"], base_url, "video")
    if "cover" in out:
        urls["image"] = media.url(out["cover"], base_url, "cover")
    images = [
        media.url(ref, base_url, f"image{i + 1}") for i, ref in enumerate(out.get("images", []))
    ]
    if images:
        urls["images"] = images
        urls["image"] = urls["image"] or images[0]
    return urls


def native_view(row: TaskRow, media: MediaService, base_url: str) -> dict[str, Any]:
    urls = media_urls(row, media, base_url)
    view: dict[str, Any] = {
        "taskid": row.id,
        "status": row.status.value,
        "usage": row.usage if row.status.value == "SUCCEEDED" else None,
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
