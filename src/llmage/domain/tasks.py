"""Tasks: the status machine and how each dialect spells a status.

CREATED → PENDING → RUNNING → SUCCEEDED | FAILED | CANCELLED. A task may skip forward (a provider
can answer "done" to the first poll) but never moves back, and a terminal status is final.
"""

from __future__ import annotations

from enum import StrEnum


class TaskStatus(StrEnum):
    CREATED = "CREATED"
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    SUCCEEDED = "SUCCEEDED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"

    @property
    def terminal(self) -> bool:
        return self in _TERMINAL


_TERMINAL = frozenset({TaskStatus.SUCCEEDED, TaskStatus.FAILED, TaskStatus.CANCELLED})
_RANK = {
    TaskStatus.CREATED: 0,
    TaskStatus.PENDING: 1,
    TaskStatus.RUNNING: 2,
    TaskStatus.SUCCEEDED: 3,
    TaskStatus.FAILED: 3,
    TaskStatus.CANCELLED: 3,
}
OPEN_STATUSES = (TaskStatus.CREATED, TaskStatus.PENDING, TaskStatus.RUNNING)


def can_move(current: TaskStatus, new: TaskStatus) -> bool:
    """Forward only; staying put is allowed (progress updates) until the task is terminal."""
    return not current.terminal and _RANK[new] >= _RANK[current]


def openai_status(status: TaskStatus) -> str:
    """OpenAI videos: queued | in_progress | completed | failed (a cancel reads as failed)."""
    return {
        TaskStatus.CREATED: "queued",
        TaskStatus.PENDING: "queued",
        TaskStatus.RUNNING: "in_progress",
        TaskStatus.SUCCEEDED: "completed",
    }.get(status, "failed")


def newapi_status(status: TaskStatus) -> str:
    """new-api `video.generation.job`: queued | in_progress | completed | failed | cancelled."""
    return {
        TaskStatus.CREATED: "queued",
        TaskStatus.PENDING: "queued",
        TaskStatus.RUNNING: "in_progress",
        TaskStatus.SUCCEEDED: "completed",
        TaskStatus.CANCELLED: "cancelled",
    }.get(status, "failed")


# Upstream spellings seen across providers (PROVIDERS.md §0), folded into ours. Anything not
# listed is treated as still running: an unknown word must never leak to a client or end a task.
UPSTREAM_STATUS: dict[str, TaskStatus] = {
    **dict.fromkeys(
        ("pending", "queued", "created", "queueing", "submitted", "in_queue", "waiting"),
        TaskStatus.PENDING,
    ),
    **dict.fromkeys(("running", "processing", "generating", "in_progress"), TaskStatus.RUNNING),
    **dict.fromkeys(("succeeded", "success", "succeed", "done", "completed"), TaskStatus.SUCCEEDED),
    **dict.fromkeys(
        ("failed", "failure", "canceled", "cancelled", "expired", "not_found", "unknown", "error"),
        TaskStatus.FAILED,
    ),
}


def fold_upstream_status(word: str) -> TaskStatus:
    return UPSTREAM_STATUS.get(word.strip().lower(), TaskStatus.RUNNING)
