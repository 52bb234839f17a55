"""Task replies (`GET /tasks/{id}`): status, outputs and usage, in our terms (PROVIDERS.md §1.2,
§1.5, §2).

    {"request_id", "output": {"task_id", "task_status", "submit_time", "video_url" |
     "results", "orig_prompt", "code"?, "message"?}, "usage": {...}}

Statuses: PENDING and SUSPENDED wait, RUNNING runs, SUCCEEDED, and three ends that fail: FAILED
(with `output.code`/`message`, or with neither: a generic reason is stored), CANCELED, and
UNKNOWN (the id expired or never existed: the task is gone, never polled again). Any other word
is logged and read as still running.

Usage is what DashScope bills: `video_duration` seconds (a number or a numeric string; some
deployments say `duration`), the output size (`video_ratio` "1920*1080", or `SR`), and
`image_count` for images. Missing usage leaves the request's own values to price the task.
"""

from __future__ import annotations

import logging
from typing import Any

from llmage.domain.errors import UpstreamError, UpstreamKind
from llmage.domain.tasks import TaskStatus
from llmage.domain.usage import Usage
from llmage.providers.dashscope.errors import failure_kind
from llmage.providers.tasks import PollResult, TaskOutput
from llmage.providers.wire import dig

log = logging.getLogger(__name__)

STATUS = {
    "PENDING": TaskStatus.PENDING,
    "SUSPENDED": TaskStatus.PENDING,
    "RUNNING": TaskStatus.RUNNING,
    "SUCCEEDED": TaskStatus.SUCCEEDED,
    "FAILED": TaskStatus.FAILED,
    "CANCELED": TaskStatus.FAILED,
    "UNKNOWN": TaskStatus.FAILED,
}
_IMAGE_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg",
                ".webp": "image/webp"}  # fmt: skip


def number(value: Any) -> float | None:
    """A number, or a string holding one (`5`, `5.2`, `"5"`); anything else is None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            return None
    return None


def _dims(raw: Any) -> tuple[int, int] | None:
    w, sep, h = str(raw or "").replace("x", "*").partition("*")
    if sep and w.strip().isdigit() and h.strip().isdigit():
        return int(w), int(h)
    return None


def _tier(width: int, height: int) -> str:
    """DashScope's tiers by pixel count (624*624 is a 480P size, 1440*1440 a 1080P one)."""
    pixels = width * height
    return "480p" if pixels < 600_000 else "720p" if pixels < 1_500_000 else "1080p"


def video_usage(usage: Any) -> Usage:
    if not isinstance(usage, dict):
        return Usage()
    seconds = number(usage.get("video_duration"))
    if seconds is None:
        seconds = number(usage.get("duration"))
    dims = _dims(usage.get("video_ratio"))
    width = height = None
    resolution = None
    if dims is not None:
        width, height = dims
        resolution = _tier(width, height)
    else:
        sr = number(usage.get("SR"))  # the short side: 480, 720, 1080
        if sr is not None and sr > 0:
            resolution = min(("480p", "720p", "1080p"), key=lambda t: abs(int(t[:-1]) - sr))
    return Usage(seconds=seconds, resolution=resolution, width=width, height=height)


def _failed(kind: UpstreamKind, code: str, message: str) -> PollResult:
    return PollResult(TaskStatus.FAILED, error_kind=kind, error_code=code, error_message=message)


def _video_url(output: dict[str, Any]) -> str | None:
    url = output.get("video_url")
    if not isinstance(url, str) or not url:
        # Some Wan-Animate models answer in `output.results.video_url`.
        url = dig(output, "results", "video_url")
    return url if isinstance(url, str) and url else None


def _image_type(url: str) -> str:
    path = url.split("?", 1)[0].lower()
    return next((t for ext, t in _IMAGE_TYPES.items() if path.endswith(ext)), "image/png")


def parse_task(data: Any, kind: str) -> PollResult:
    output = dig(data, "output")
    if not isinstance(output, dict):
        raise UpstreamError(UpstreamKind.UPSTREAM_BUG, "Task reply has no output")
    word = str(output.get("task_status") or "")
    status = STATUS.get(word)
    if status is None:
        log.warning("DashScope task %s: undocumented status %r", output.get("task_id"), word)
        return PollResult(TaskStatus.RUNNING)
    if word == "UNKNOWN":
        return _failed(UpstreamKind.TASK_GONE, "UNKNOWN", "The task expired or does not exist")
    if word == "CANCELED":
        return _failed(UpstreamKind.RETRYABLE, "CANCELED", "The provider cancelled the task")
    if status is TaskStatus.FAILED:
        code = str(output.get("code") or "") or None
        message = str(output.get("message") or "") or None
        return _failed(
            failure_kind(code, message),
            code or "FAILED",
            # DashScope may fail a task within seconds with neither code nor message.
            message or "The provider failed the task and gave no reason",
        )
    if status is not TaskStatus.SUCCEEDED:
        return PollResult(status)
    return _image_result(data, output) if kind == "image" else _video_result(data, output)


def _video_result(data: Any, output: dict[str, Any]) -> PollResult:
    url = _video_url(output)
    if url is None:
        return _failed(UpstreamKind.UPSTREAM_BUG, "no_result", "The task succeeded with no video")
    return PollResult(
        TaskStatus.SUCCEEDED,
        progress=100,
        outputs=(TaskOutput("video", "video/mp4", url=url),),  # no cover: the gateway cuts one
        usage=video_usage(dig(data, "usage")),
    )


def _image_result(data: Any, output: dict[str, Any]) -> PollResult:
    results = output.get("results")
    items = results if isinstance(results, list) else []
    urls = [r["url"] for r in items if isinstance(r, dict) and isinstance(r.get("url"), str)]
    if not urls:
        # Every image was refused or lost: the first failure says why.
        failure = next((r for r in items if isinstance(r, dict) and r.get("code")), {})
        code = str(failure.get("code") or "no_result")
        message = str(failure.get("message") or "The task succeeded with no image")
        kind = failure_kind(code, message) if failure else UpstreamKind.UPSTREAM_BUG
        return _failed(kind, code, message)
    count = number(dig(data, "usage", "image_count"))
    return PollResult(
        TaskStatus.SUCCEEDED,
        progress=100,
        outputs=tuple(TaskOutput("image", _image_type(u), url=u) for u in urls),
        usage=Usage(images=int(count) if count is not None else len(urls)),
    )
