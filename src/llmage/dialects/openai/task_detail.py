"""Pure: the `detail` object of seed 003 (`GET /{platform}/v1/videos/{id}?detail=true`) and the
small pieces the OpenAI video and image views share (timestamps, the task's error)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from llmage.domain.money import format_amount
from llmage.domain.stored_files import StoredFile
from llmage.domain.tasks import TaskRow

# (a stored file from the task's own records, a name for the download) -> a signed URL
UrlOf = Callable[[StoredFile, str], str]


def unix(ms: int | None) -> int | None:
    return None if ms is None else ms // 1000


def public_params(row: TaskRow, url_of: UrlOf | None) -> dict[str, Any]:
    """Task params as a client may see them: its plain values as sent, and its input files
    (from the task's own records, never from params) as signed URLs, or left out without
    `url_of`. Storage keys never leave the server."""
    out: dict[str, Any] = dict(row.params)
    for name, slot in row.inputs.items():
        out.pop(name, None)
        if url_of is None:
            continue
        if isinstance(slot, tuple):
            out[name] = [url_of(f, f"{name}{i + 1}") for i, f in enumerate(slot)]
        else:
            out[name] = url_of(slot, name)
    return out


def task_error(row: TaskRow) -> dict[str, Any] | None:
    if not row.error_code and not row.error_message:
        return None
    return {"code": row.error_code or "failed", "message": row.error_message or ""}


def task_detail(row: TaskRow, currency: str, url_of: UrlOf | None) -> dict[str, Any]:
    """The task's metadata: what was run, on what, for how much, and when."""
    return {
        "task_id": row.id,
        "kind": row.kind,
        "llmid": row.llmid,
        "model": row.model,
        "platform": row.platform,
        "native_status": row.status.public.value,
        "params": public_params(row, url_of),
        "usage": row.usage,
        "quoted": format_amount(row.quoted),
        "charged": None if row.charged is None else format_amount(row.charged),
        "currency": currency,
        "error": task_error(row),
        "remix_of": row.remix_of,
        "created_at": unix(row.created_at),
        "updated_at": unix(row.updated_at),
        "finished_at": unix(row.finished_at),
    }
