"""Pure: the `detail` object of seed 003 (`GET /{platform}/v1/videos/{id}?detail=true`) and the
small pieces the OpenAI video and image views share (timestamps, the task's error)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from llmage.domain.money import format_amount
from llmage.domain.tasks import TaskRow

# (stored file reference, a name for the download) -> a signed URL
UrlOf = Callable[[Mapping[str, Any], str], str]


def unix(ms: int | None) -> int | None:
    return None if ms is None else ms // 1000


def is_file_ref(value: Any) -> bool:
    return isinstance(value, dict) and "key" in value and "content_type" in value


def public_params(params: Mapping[str, Any], url_of: UrlOf | None) -> dict[str, Any]:
    """Task params as a client may see them: stored file references become signed URLs (or
    are left out without `url_of`); storage keys never leave the server."""
    out: dict[str, Any] = {}
    for name, value in params.items():
        if is_file_ref(value):
            if url_of is not None:
                out[name] = url_of(value, name)
        elif isinstance(value, list) and value and all(is_file_ref(v) for v in value):
            if url_of is not None:
                out[name] = [url_of(v, f"{name}{i + 1}") for i, v in enumerate(value)]
        else:
            out[name] = value
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
        "native_status": row.status.value,
        "params": public_params(row.params, url_of),
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
